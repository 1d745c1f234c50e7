-- The certificate flow: the app's certificate (PEM, public) and its private key (sealed).
ALTER TABLE system_settings ADD COLUMN client_certificate TEXT NOT NULL DEFAULT '';
ALTER TABLE system_settings ADD COLUMN client_key BYTEA;
