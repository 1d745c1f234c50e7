-- Moves are recorded per folder, not per message: the worker moves committed batches in UID order,
-- so cursors.moved_uid ("every stored message up to this UID has been moved") replaces
-- message_uids.moved_at and its partial index of unmoved rows, which every stored message wrote twice
-- (on insert, and again when moved).
ALTER TABLE cursors ADD COLUMN moved_uid INTEGER NOT NULL DEFAULT 0;
-- Below the first message still to be moved; moves recorded above it are repeated (a MOVE of a UID no
-- longer in the folder does nothing).
UPDATE cursors SET moved_uid = coalesce(
	(SELECT min(u.uid) - 1 FROM message_uids u WHERE u.account_id = cursors.account_id AND u.folder = cursors.folder
		AND u.uidvalidity = cursors.uidvalidity AND u.moved_at IS NULL AND u.dest != ''),
	last_uid);
DROP INDEX message_uids_pending;
ALTER TABLE message_uids DROP COLUMN moved_at;
