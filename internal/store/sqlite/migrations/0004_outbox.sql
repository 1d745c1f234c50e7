-- Outgoing mail: the durable outbox (one row per message the ERP posted, its exact bytes beside it),
-- and the system setting "Send with" (smtp or graph under Exchange Online; '' = smtp).

ALTER TABLE system_settings ADD COLUMN send_transport TEXT NOT NULL DEFAULT '';

CREATE TABLE outbox (
	seq            INTEGER PRIMARY KEY AUTOINCREMENT,
	id             TEXT NOT NULL UNIQUE,
	sender         TEXT NOT NULL,
	webshop        INTEGER NOT NULL DEFAULT 0,
	from_addr      TEXT NOT NULL,
	recipients     TEXT NOT NULL DEFAULT '[]',
	bcc            TEXT NOT NULL DEFAULT '[]',
	subject        TEXT NOT NULL DEFAULT '',
	message_id     TEXT NOT NULL DEFAULT '',
	related_record TEXT NOT NULL DEFAULT '',
	size           INTEGER NOT NULL,
	state          TEXT NOT NULL,
	transport      TEXT NOT NULL DEFAULT '',
	attempts       INTEGER NOT NULL DEFAULT 0,
	created_at     TEXT NOT NULL,
	next_at        TEXT NOT NULL,
	lease_until    TEXT,
	sent_at        TEXT,
	server_reply   TEXT NOT NULL DEFAULT '',
	last_error     TEXT,           -- JSON of the diag error, secrets never in it
	updated_at     TEXT NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_at) WHERE state = 'queued';
CREATE INDEX outbox_state ON outbox (state, seq);

CREATE TABLE outbox_raw (
	id  TEXT PRIMARY KEY,
	raw BLOB NOT NULL
);
