-- The raw bytes of new messages are kept in append-only segment files beside the database
-- (internal/store/segments): a message records its segment and offset (its length is size). Messages
-- stored before this migration, and those in a backup copy, keep their bytes in message_raw
-- (raw_segment NULL).
ALTER TABLE messages ADD COLUMN raw_segment INTEGER;
ALTER TABLE messages ADD COLUMN raw_offset INTEGER;
