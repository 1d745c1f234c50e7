-- Settings of the seeds' four procedures, and the audit log of their changes.
-- Secrets are BLOBs sealed by package secrets (AES-256-GCM, bound to their field); NULL = not set.
-- In the users table, NULL means "inherit the system setting".

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

CREATE TABLE system_settings (
	id                    INTEGER PRIMARY KEY CHECK (id = 1),
	email_method          TEXT NOT NULL DEFAULT '',
	server_address        TEXT NOT NULL DEFAULT '',
	port                  INTEGER NOT NULL DEFAULT 0 CHECK (port BETWEEN 0 AND 65535),
	use_ssl               INTEGER NOT NULL DEFAULT 0,
	username              TEXT NOT NULL DEFAULT '',
	password              BLOB,
	client_id             TEXT NOT NULL DEFAULT '',
	tenant_id             TEXT NOT NULL DEFAULT '',
	auth_flow             TEXT NOT NULL DEFAULT '',
	client_secret         BLOB,
	client_secret_expires TEXT NOT NULL DEFAULT '',
	updated_at            TEXT NOT NULL
);

CREATE TABLE users (
	name              TEXT PRIMARY KEY COLLATE NOCASE,
	email_method      TEXT,
	email_address     TEXT,
	exchange_username TEXT,
	exchange_password BLOB,
	exchange_password_set INTEGER NOT NULL DEFAULT 0, -- 1: the user overrides the password (possibly with "none")
	copy_to_self      TEXT,
	signature         TEXT,
	updated_at        TEXT NOT NULL
);

CREATE TABLE incoming_accounts (
	id                    INTEGER PRIMARY KEY AUTOINCREMENT,
	address               TEXT NOT NULL UNIQUE COLLATE NOCASE,
	type                  TEXT NOT NULL,
	exchange_username     TEXT NOT NULL DEFAULT '',
	exchange_password     BLOB,
	available_to          TEXT NOT NULL DEFAULT '[]', -- JSON array of user and role names
	client_id             TEXT,
	tenant_id             TEXT,
	auth_flow             TEXT,
	client_secret         BLOB,
	client_secret_set     INTEGER NOT NULL DEFAULT 0,
	client_secret_expires TEXT,
	created_at            TEXT NOT NULL,
	updated_at            TEXT NOT NULL
);

CREATE TABLE webshop_settings (
	id           INTEGER PRIMARY KEY CHECK (id = 1),
	email_method TEXT NOT NULL DEFAULT '',
	updated_at   TEXT NOT NULL
);

CREATE TABLE audit_log (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	at        TEXT NOT NULL,
	actor     TEXT NOT NULL,
	entity    TEXT NOT NULL,
	field     TEXT NOT NULL,
	old_value TEXT NOT NULL,
	new_value TEXT NOT NULL
);
