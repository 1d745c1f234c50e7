-- Operators of the admin web UI (password hashes only) and their sessions (token SHA-256 only).

CREATE TABLE operators (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	name          TEXT NOT NULL UNIQUE COLLATE NOCASE,
	role          TEXT NOT NULL,
	erp_user      TEXT NOT NULL DEFAULT '',
	password_hash BLOB NOT NULL,
	created_at    TEXT NOT NULL
);

CREATE TABLE operator_sessions (
	hash        BLOB PRIMARY KEY,
	operator_id INTEGER NOT NULL REFERENCES operators (id) ON DELETE CASCADE,
	created_at  TEXT NOT NULL,
	expires_at  TEXT NOT NULL
);
CREATE INDEX operator_sessions_expiry ON operator_sessions (expires_at);
