-- Moves are recorded per folder, not per message (the twin of the SQLite store's
-- 0008_moved_watermark.sql): the worker moves committed batches in UID order, so cursors.moved_uid
-- ("every stored message up to this UID has been moved") replaces message_uids.moved_at and its
-- partial index of unmoved rows, which every stored message wrote twice.
ALTER TABLE cursors ADD COLUMN moved_uid BIGINT NOT NULL DEFAULT 0 CHECK (moved_uid BETWEEN 0 AND 4294967295);
-- Below the first message still to be moved; moves recorded above it are repeated (a MOVE of a UID no
-- longer in the folder does nothing).
UPDATE cursors SET moved_uid = coalesce(
	(SELECT min(u.uid) - 1 FROM message_uids u WHERE u.account_id = cursors.account_id AND u.folder = cursors.folder
		AND u.uidvalidity = cursors.uidvalidity AND u.moved_at IS NULL AND u.dest <> ''),
	last_uid);
DROP INDEX message_uids_pending;
ALTER TABLE message_uids DROP COLUMN moved_at;
