-- Operators of the admin web UI (password hashes only) and their sessions (token SHA-256 only).

CREATE TABLE operators (
	id            BIGSERIAL PRIMARY KEY,
	name          TEXT NOT NULL,
	role          TEXT NOT NULL,
	erp_user      TEXT NOT NULL DEFAULT '',
	password_hash BYTEA NOT NULL,
	created_at    TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX operators_name_lower ON operators (lower(name));

CREATE TABLE operator_sessions (
	hash        BYTEA PRIMARY KEY,
	operator_id BIGINT NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
	created_at  TIMESTAMPTZ NOT NULL,
	expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX operator_sessions_expiry ON operator_sessions (expires_at);
