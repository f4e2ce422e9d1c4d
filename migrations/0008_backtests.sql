-- 0008_backtests: backtest jobs (issue 14), the label sources payments teams get, and the index
-- the exports and backtests read history through.
--
-- A job row holds everything needed to resume after an API restart: the resolved candidate policy
-- (frozen at creation, so "active" means the policy in force when the job was created), the
-- filter, the snapshot bound (created_at: rows stored later are not part of the job), the keyset
-- position of the last finished chunk and the partial aggregates up to it.  The labelled rows'
-- scores (needed for the exact ROC/PR AUC) are appended per chunk to backtest_scores in the same
-- database transaction as the progress, so a resumed job never counts a chunk twice.

ALTER TABLE transactions DROP CONSTRAINT IF EXISTS transactions_label_source_check;
ALTER TABLE transactions ADD CONSTRAINT transactions_label_source_check
    CHECK (label_source IN ('chargeback', 'early_fraud_warning', 'refund', 'analyst', 'customer'));

-- Keyset scans in time order (exports, backtests): (occurred_at, id).
CREATE INDEX transactions_occurred_id ON transactions (occurred_at, id);

CREATE TABLE backtests (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    state           text NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    policy          json NOT NULL,          -- the candidate, resolved: models, thresholds, rules
    policy_source   json NOT NULL,          -- what was asked: "active", {"version": n}, "recorded" or
                                            -- "object"
    from_at         timestamptz NOT NULL,
    to_at           timestamptz NOT NULL,
    filter          json NOT NULL DEFAULT '{}',
    total           bigint,                 -- rows in the window, counted when the job starts
    processed       bigint NOT NULL DEFAULT 0,
    cursor_at       timestamptz,            -- keyset position after the last finished chunk
    cursor_id       uuid,
    partial         json,                   -- the aggregates up to the cursor
    report          json,                   -- when succeeded
    error           text,                   -- when failed
    run_seconds     double precision NOT NULL DEFAULT 0,  -- time spent running, over restarts
    api_key_id      uuid,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK (from_at < to_at)
);
CREATE INDEX backtests_created_at_id ON backtests (created_at DESC, id DESC);
CREATE INDEX backtests_runnable ON backtests (created_at) WHERE state IN ('queued', 'running');

-- The candidate champion's score of every labelled row, for the AUCs (sorted at the end).
CREATE TABLE backtest_scores (
    backtest_id  uuid NOT NULL REFERENCES backtests (id) ON DELETE CASCADE,
    score        real NOT NULL,
    fraud        boolean NOT NULL
);
CREATE INDEX backtest_scores_job ON backtest_scores (backtest_id);
