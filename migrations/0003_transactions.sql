-- 0003_transactions: the decision policy, scored transactions with their feature snapshots and
-- decisions, and idempotency keys.

-- Exactly one policy row (id is always true).  Models it names cannot be deleted (FK -> 409).
CREATE TABLE policy (
    id                   boolean PRIMARY KEY DEFAULT true CHECK (id),
    champion_model_id    uuid REFERENCES models (id),
    challenger_model_id  uuid REFERENCES models (id),
    review_threshold     double precision NOT NULL DEFAULT 0.5,
    block_threshold      double precision NOT NULL DEFAULT 0.9,
    fallback_decision    text NOT NULL DEFAULT 'review'
                         CHECK (fallback_decision IN ('allow', 'review', 'block')),
    scoring_timeout_ms   integer NOT NULL DEFAULT 50 CHECK (scoring_timeout_ms BETWEEN 1 AND 10000),
    version              integer NOT NULL DEFAULT 1,
    updated_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (0 <= review_threshold AND review_threshold <= block_threshold)
);
INSERT INTO policy DEFAULT VALUES;

CREATE TABLE transactions (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id              uuid NOT NULL REFERENCES users (id),   -- RESTRICT: users with history stay
    amount               bigint NOT NULL CHECK (amount > 0 AND amount <= 9007199254740991),
    currency             text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    amount_major         double precision NOT NULL,             -- amount / 10^exponent(currency)
    merchant_id          text NOT NULL CHECK (length(merchant_id) BETWEEN 1 AND 128),
    merchant_category    text NOT NULL CHECK (merchant_category ~ '^[0-9]{4}$'),
    country              text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    channel              text NOT NULL
                         CHECK (channel IN ('card_present', 'ecommerce', 'transfer', 'wallet')),
    occurred_at          timestamptz NOT NULL,
    client_features      json,                                  -- as the client sent them
    metadata             jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- the decision, exactly as made
    features             json NOT NULL,                         -- name -> value scored (null = missing)
    score                real,
    decision             text NOT NULL CHECK (decision IN ('allow', 'review', 'block')),
    degraded             boolean NOT NULL,
    degraded_reason      text,
    model_id             uuid,
    model_version        integer,
    model_sha256         text,
    challenger_model_id  uuid,
    challenger_version   integer,
    challenger_sha256    text,
    challenger_score     real,
    review_threshold     double precision NOT NULL,
    block_threshold      double precision NOT NULL,
    fallback_decision    text NOT NULL,
    scoring_timeout_ms   integer NOT NULL,
    policy_version       integer NOT NULL,
    scoring_latency_us   integer NOT NULL,
    -- feedback
    label                text CHECK (label IN ('fraud', 'legit')),
    label_source         text CHECK (label_source IN ('chargeback', 'analyst', 'customer')),
    labelled_at          timestamptz,
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Feature aggregates: a user's earlier transactions by time.
CREATE INDEX transactions_user_occurred ON transactions (user_id, occurred_at);
CREATE INDEX transactions_user_merchant ON transactions (user_id, merchant_id);
-- Listing, newest first, overall and per user.
CREATE INDEX transactions_created_id ON transactions (created_at DESC, id DESC);
CREATE INDEX transactions_user_created_id ON transactions (user_id, created_at DESC, id DESC);

CREATE TABLE idempotency_keys (
    api_key_id     uuid NOT NULL,
    key            text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash   text NOT NULL,          -- SHA-256 of method, path and body
    status_code    integer NOT NULL,
    response_body  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (api_key_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
