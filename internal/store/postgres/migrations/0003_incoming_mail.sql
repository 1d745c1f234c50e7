-- Incoming mail: how each account's mailbox is handled, the messages, where they are on the server,
-- the cursors, the workers' state, the ERP's API tokens and webhooks (the PostgreSQL twin of the
-- SQLite store's 0003_incoming_mail.sql; same meaning, PostgreSQL types).
--
-- Lists of strings (to, cc, problems) are TEXT[], as incoming_accounts.available_to is; structured
-- values (attachments, the M2M summary, a worker's last error) are JSONB: validated on write and
-- queryable by an operator (m2m->>'kind'). Neither accepts a NUL character, so the store replaces
-- one (and invalid UTF-8) with U+FFFD before writing. Times are TIMESTAMPTZ (microseconds); NULL
-- means "never" or "none".

ALTER TABLE incoming_accounts
	ADD COLUMN folder           TEXT NOT NULL DEFAULT '',
	ADD COLUMN processed_folder TEXT NOT NULL DEFAULT '',
	ADD COLUMN failed_folder    TEXT NOT NULL DEFAULT '',
	ADD COLUMN leave_in_place   BOOLEAN NOT NULL DEFAULT false,
	ADD COLUMN poll_seconds     BIGINT NOT NULL DEFAULT 0;

-- One row per stored message; seq orders them for the ERP's cursor. A message is the same message when
-- its bytes are the same (sha256) in the same account: a second copy is not stored twice. account_id
-- carries no foreign key, as in SQLite: a message outlives the removal of its account.
CREATE TABLE messages (
	seq         BIGSERIAL PRIMARY KEY,
	id          TEXT NOT NULL UNIQUE,
	account_id  BIGINT NOT NULL,
	account     TEXT NOT NULL,
	type        TEXT NOT NULL,
	message_id  TEXT NOT NULL DEFAULT '',
	sha256      TEXT NOT NULL,
	size        BIGINT NOT NULL,
	from_addr   TEXT NOT NULL DEFAULT '',
	to_addrs    TEXT[] NOT NULL DEFAULT '{}',
	cc_addrs    TEXT[] NOT NULL DEFAULT '{}',
	subject     TEXT NOT NULL DEFAULT '',
	date        TIMESTAMPTZ, -- NULL: no (readable) Date header
	received_at TIMESTAMPTZ NOT NULL,
	attachments JSONB NOT NULL DEFAULT '[]',
	m2m         JSONB,
	problems    TEXT[] NOT NULL DEFAULT '{}',
	failed      TEXT NOT NULL DEFAULT '',
	acked_at    TIMESTAMPTZ,
	UNIQUE (account_id, sha256)
);
CREATE INDEX messages_type_seq ON messages (type, seq);
CREATE INDEX messages_account_seq ON messages (lower(account), seq);

CREATE TABLE message_raw (
	id  TEXT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
	raw BYTEA NOT NULL
);

-- Where each stored message was found on the server, and whether it has been moved away since.
CREATE TABLE message_uids (
	account_id  BIGINT NOT NULL,
	folder      TEXT NOT NULL,
	uidvalidity BIGINT NOT NULL CHECK (uidvalidity BETWEEN 1 AND 4294967295),
	uid         BIGINT NOT NULL CHECK (uid BETWEEN 1 AND 4294967295),
	message     TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
	dest        TEXT NOT NULL DEFAULT '', -- the folder to move it to; '' = leave in place
	moved_at    TIMESTAMPTZ,
	PRIMARY KEY (account_id, folder, uidvalidity, uid)
);
CREATE INDEX message_uids_pending ON message_uids (account_id) WHERE moved_at IS NULL AND dest <> '';
CREATE INDEX message_uids_message ON message_uids (message);

-- UIDVALIDITY and UIDs are IMAP's unsigned 32-bit numbers: BIGINT holds them without a sign trick.
CREATE TABLE cursors (
	account_id  BIGINT NOT NULL,
	folder      TEXT NOT NULL,
	uidvalidity BIGINT NOT NULL CHECK (uidvalidity BETWEEN 0 AND 4294967295),
	last_uid    BIGINT NOT NULL CHECK (last_uid BETWEEN 0 AND 4294967295),
	updated_at  TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (account_id, folder)
);

CREATE TABLE account_state (
	account_id    BIGINT PRIMARY KEY,
	state         TEXT NOT NULL,
	detail        TEXT NOT NULL DEFAULT '',
	last_error    JSONB, -- the diag error, secrets never in it
	last_poll     TIMESTAMPTZ,
	backlog       INTEGER NOT NULL DEFAULT 0,
	token_expires TIMESTAMPTZ,
	updated_at    TIMESTAMPTZ NOT NULL
);

-- Names are unique case-insensitively (as the SQLite store's COLLATE NOCASE); the name keeps the case
-- it was given.
CREATE TABLE api_tokens (
	id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name       TEXT NOT NULL,
	hash       BYTEA NOT NULL UNIQUE,
	created_at TIMESTAMPTZ NOT NULL,
	last_used  TIMESTAMPTZ
);
CREATE UNIQUE INDEX api_tokens_name_lower ON api_tokens (lower(name));

CREATE TABLE webhooks (
	type       TEXT PRIMARY KEY,
	url        TEXT NOT NULL,
	secret     BYTEA NOT NULL, -- sealed, bound to "webhooks[<type>].secret"
	updated_at TIMESTAMPTZ NOT NULL
);

-- seq keeps deliveries due at the same moment in the order they were owed (SQLite's rowid).
CREATE TABLE deliveries (
	seq          BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
	message      TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
	type         TEXT NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_at      TIMESTAMPTZ NOT NULL,
	delivered_at TIMESTAMPTZ,
	last_error   TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (message, type)
);
CREATE INDEX deliveries_due ON deliveries (next_at, seq) WHERE delivered_at IS NULL;
