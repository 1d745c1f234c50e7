-- Which inkorg process reads each incoming account (several processes may share one database): the
-- holder renews its claim while it runs; another process takes the account over when it lapses.
CREATE TABLE account_claims (
	account_id BIGINT PRIMARY KEY,
	holder     TEXT NOT NULL,
	until      TIMESTAMPTZ NOT NULL
);
