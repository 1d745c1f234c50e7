-- Outgoing mail: the durable outbox and the system setting "Send with" (the PostgreSQL twin of the
-- SQLite store's 0004_outbox.sql). Recipients are TEXT[], the last error JSONB, times TIMESTAMPTZ.

ALTER TABLE system_settings ADD COLUMN send_transport TEXT NOT NULL DEFAULT '';

CREATE TABLE outbox (
	seq            BIGSERIAL PRIMARY KEY,
	id             TEXT NOT NULL UNIQUE,
	sender         TEXT NOT NULL,
	webshop        BOOLEAN NOT NULL DEFAULT false,
	from_addr      TEXT NOT NULL,
	recipients     TEXT[] NOT NULL DEFAULT '{}',
	bcc            TEXT[] NOT NULL DEFAULT '{}',
	subject        TEXT NOT NULL DEFAULT '',
	message_id     TEXT NOT NULL DEFAULT '',
	related_record TEXT NOT NULL DEFAULT '',
	size           BIGINT NOT NULL,
	state          TEXT NOT NULL,
	transport      TEXT NOT NULL DEFAULT '',
	attempts       INTEGER NOT NULL DEFAULT 0,
	created_at     TIMESTAMPTZ NOT NULL,
	next_at        TIMESTAMPTZ NOT NULL,
	lease_until    TIMESTAMPTZ,
	sent_at        TIMESTAMPTZ,
	server_reply   TEXT NOT NULL DEFAULT '',
	last_error     JSONB,
	updated_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_at) WHERE state = 'queued';
CREATE INDEX outbox_state ON outbox (state, seq);

CREATE TABLE outbox_raw (
	id  TEXT PRIMARY KEY,
	raw BYTEA NOT NULL
);
