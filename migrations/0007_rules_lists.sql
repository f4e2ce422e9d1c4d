-- 0007_rules_lists: rules, lists and policy versions (issue 12).
--
-- Transactions gain the identity fields fraud lists are made of, and what the rules did: every
-- matched rule, what decided, the list versions consulted and each list probe's result (so a
-- stored decision replays exactly with common/rules.c).  Lists hold strings, numbers or IP
-- addresses/CIDR ranges (stored in the API's canonical text form); each change bumps the list's
-- version and is recorded in list_changes with the API key that made it.  Every PUT of the policy
-- (and every rollback) appends an immutable row to policy_versions; the policy row stays the
-- active one (its FKs keep the active models from being deleted) and names the lists its rules use.

ALTER TABLE transactions
    ADD COLUMN email             text CHECK (length(email) <= 254),
    ADD COLUMN ip_address        text CHECK (length(ip_address) <= 45),   -- canonical (inet_ntop)
    ADD COLUMN device_id         text CHECK (length(device_id) <= 256),
    ADD COLUMN card_fingerprint  text CHECK (length(card_fingerprint) <= 256),
    ADD COLUMN card_bin          text CHECK (card_bin ~ '^[0-9]{6,8}$'),
    ADD COLUMN card_country      text CHECK (card_country ~ '^[A-Z]{2}$'),
    ADD COLUMN shipping_country  text CHECK (shipping_country ~ '^[A-Z]{2}$'),
    -- [{"name", "action", "mode"}] of every rule that matched, NULL when the policy had no rules
    ADD COLUMN rules_matched     json,
    -- rule:<name> | score_threshold | fallback | default
    ADD COLUMN decided_by        text,
    -- {"<list name>": version} of every list the rules consulted
    ADD COLUMN list_versions     json,
    -- [{"list", "operand", "result": "member" | "not_member" | "missing"}] in program order
    ADD COLUMN list_probes       json,
    -- every rule operand's value as evaluated: {"numbers": {name: x|null}, "strings": {...}}
    ADD COLUMN rule_inputs       json;

-- A decision with rules stores ~2 KB more (its operands, probes, matched rules): keep rows up to
-- a page inline rather than compressing/TOASTing every insert (PostgreSQL's default target is
-- ~2 KB).
ALTER TABLE transactions SET (toast_tuple_target = 8160);

ALTER TABLE policy
    ADD COLUMN rules       json NOT NULL DEFAULT '[]',
    ADD COLUMN rule_lists  text[] NOT NULL DEFAULT '{}';   -- names of the lists the rules use

CREATE TABLE policy_versions (
    version              integer PRIMARY KEY,
    champion_model_id    uuid,             -- no FK: a version outlives the models it named
    challenger_model_id  uuid,
    review_threshold     double precision NOT NULL,
    block_threshold      double precision NOT NULL,
    fallback_decision    text NOT NULL,
    scoring_timeout_ms   integer NOT NULL,
    explain_top_k        integer NOT NULL,
    rules                json NOT NULL DEFAULT '[]',
    activated_from       integer,          -- the version a rollback copied, else NULL
    api_key_id           uuid,             -- NULL for the version the migration recorded
    api_key_name         text,
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- The active policy as it is now is its first recorded version.
INSERT INTO policy_versions (version, champion_model_id, challenger_model_id, review_threshold,
                             block_threshold, fallback_decision, scoring_timeout_ms,
                             explain_top_k, rules, created_at)
SELECT version, champion_model_id, challenger_model_id, review_threshold, block_threshold,
       fallback_decision, scoring_timeout_ms, explain_top_k, rules, updated_at
FROM policy;

CREATE TABLE lists (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$'),
    kind         text NOT NULL CHECK (kind IN ('string', 'ip', 'number')),
    description  text CHECK (length(description) <= 1024),
    version      bigint NOT NULL DEFAULT 1,
    item_count   bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX lists_created_at_id ON lists (created_at DESC, id DESC);

CREATE TABLE list_items (
    list_id   uuid NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    value     text COLLATE "C" NOT NULL,   -- byte order: pages and the index compare bytes
    PRIMARY KEY (list_id, value)
);

-- The audit of list changes; kept when the list is deleted (no FK).
CREATE TABLE list_changes (
    id            bigserial PRIMARY KEY,
    list_id       uuid NOT NULL,
    list_name     text NOT NULL,
    action        text NOT NULL CHECK (action IN ('create', 'add', 'remove', 'delete')),
    version       bigint NOT NULL,          -- the list's version after the change
    added         integer NOT NULL DEFAULT 0,
    removed       integer NOT NULL DEFAULT 0,
    api_key_id    uuid,
    api_key_name  text,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX list_changes_list ON list_changes (list_id, id DESC);

-- Versions and the list audit are append-only: the schema refuses to change or remove a row.
CREATE FUNCTION vigil_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER policy_versions_append_only BEFORE UPDATE OR DELETE ON policy_versions
    FOR EACH ROW EXECUTE FUNCTION vigil_append_only();
CREATE TRIGGER list_changes_append_only BEFORE UPDATE OR DELETE ON list_changes
    FOR EACH ROW EXECUTE FUNCTION vigil_append_only();
