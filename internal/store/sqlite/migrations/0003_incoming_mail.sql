-- Incoming mail: how each account's mailbox is handled, the messages, where they are on the server,
-- the cursors, the workers' state, the ERP's API tokens and webhooks.

ALTER TABLE incoming_accounts ADD COLUMN folder TEXT NOT NULL DEFAULT '';
ALTER TABLE incoming_accounts ADD COLUMN processed_folder TEXT NOT NULL DEFAULT '';
ALTER TABLE incoming_accounts ADD COLUMN failed_folder TEXT NOT NULL DEFAULT '';
ALTER TABLE incoming_accounts ADD COLUMN leave_in_place INTEGER NOT NULL DEFAULT 0;
ALTER TABLE incoming_accounts ADD COLUMN poll_seconds INTEGER NOT NULL DEFAULT 0;

-- One row per stored message; seq orders them for the ERP's cursor. A message is the same message when
-- its bytes are the same (sha256) in the same account: a second copy is not stored twice.
CREATE TABLE messages (
	seq          INTEGER PRIMARY KEY AUTOINCREMENT,
	id           TEXT NOT NULL UNIQUE,
	account_id   INTEGER NOT NULL,
	account      TEXT NOT NULL,
	type         TEXT NOT NULL,
	message_id   TEXT NOT NULL DEFAULT '',
	sha256       TEXT NOT NULL,
	size         INTEGER NOT NULL,
	from_addr    TEXT NOT NULL DEFAULT '',
	to_addrs     TEXT NOT NULL DEFAULT '[]',
	cc_addrs     TEXT NOT NULL DEFAULT '[]',
	subject      TEXT NOT NULL DEFAULT '',
	date         TEXT NOT NULL DEFAULT '',
	received_at  TEXT NOT NULL,
	attachments  TEXT NOT NULL DEFAULT '[]',
	m2m          TEXT,
	problems     TEXT NOT NULL DEFAULT '[]',
	failed       TEXT NOT NULL DEFAULT '',
	acked_at     TEXT,
	UNIQUE (account_id, sha256)
);
CREATE INDEX messages_type_seq ON messages (type, seq);

CREATE TABLE message_raw (
	id  TEXT PRIMARY KEY,
	raw BLOB NOT NULL
);

-- Where each stored message was found on the server, and whether it has been moved away since.
CREATE TABLE message_uids (
	account_id  INTEGER NOT NULL,
	folder      TEXT NOT NULL,
	uidvalidity INTEGER NOT NULL,
	uid         INTEGER NOT NULL,
	message     TEXT NOT NULL,
	dest        TEXT NOT NULL DEFAULT '', -- the folder to move it to; '' = leave in place
	moved_at    TEXT,
	PRIMARY KEY (account_id, folder, uidvalidity, uid)
);
CREATE INDEX message_uids_pending ON message_uids (account_id) WHERE moved_at IS NULL AND dest != '';

CREATE TABLE cursors (
	account_id  INTEGER NOT NULL,
	folder      TEXT NOT NULL,
	uidvalidity INTEGER NOT NULL,
	last_uid    INTEGER NOT NULL,
	updated_at  TEXT NOT NULL,
	PRIMARY KEY (account_id, folder)
);

CREATE TABLE account_state (
	account_id  INTEGER PRIMARY KEY,
	state       TEXT NOT NULL,
	detail      TEXT NOT NULL DEFAULT '',
	last_error  TEXT,           -- JSON of the diag error, secrets never in it
	last_poll   TEXT,
	backlog     INTEGER NOT NULL DEFAULT 0,
	token_expires TEXT,
	updated_at  TEXT NOT NULL
);

CREATE TABLE api_tokens (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	name       TEXT NOT NULL UNIQUE COLLATE NOCASE,
	hash       BLOB NOT NULL UNIQUE,
	created_at TEXT NOT NULL,
	last_used  TEXT
);

CREATE TABLE webhooks (
	type       TEXT PRIMARY KEY,
	url        TEXT NOT NULL,
	secret     BLOB NOT NULL,
	updated_at TEXT NOT NULL
);

CREATE TABLE deliveries (
	message    TEXT NOT NULL,
	type       TEXT NOT NULL,
	attempts   INTEGER NOT NULL DEFAULT 0,
	next_at    TEXT NOT NULL,
	delivered_at TEXT,
	last_error TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (message, type)
);
CREATE INDEX deliveries_due ON deliveries (next_at) WHERE delivered_at IS NULL;
