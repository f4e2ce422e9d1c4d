-- 0001_init: API keys and users (the walking skeleton).
-- gen_random_uuid() is built into PostgreSQL 13+.

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    prefix      text NOT NULL,                 -- first characters of the key, shown in lists
    key_hash    bytea NOT NULL UNIQUE,         -- SHA-256 of the whole key; the key is never stored
    scopes      text[] NOT NULL CHECK (scopes <@ ARRAY['read', 'write', 'admin']::text[]),
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    revoked_at  timestamptz
);

CREATE TABLE users (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    external_id  text NOT NULL UNIQUE CHECK (length(external_id) BETWEEN 1 AND 128),
    email        text CHECK (length(email) <= 254),
    name         text CHECK (length(name) <= 256),
    country      text CHECK (country ~ '^[A-Z]{2}$'),
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Keyset pagination, newest first.
CREATE INDEX users_created_at_id ON users (created_at DESC, id DESC);
