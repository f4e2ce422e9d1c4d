-- 0011_webhook_batches: attempts recorded a batch at a time (issue 15's speed).
--
-- The dispatcher now claims several due deliveries at once, attempts them one after another and
-- records them all in one statement, webhook_record_batch, so an attempt's start is no longer
-- "the record's time minus its duration": webhook_record gains p_started_at, the time the
-- dispatcher began the attempt, and p_streak: whether a failure counts toward the endpoint's
-- streak of consecutive failures (in a batch, a failure that started before a success of the same
-- endpoint does not: the success came after it).  Otherwise the same function as 0009's (retry
-- schedule from the record's time, give-up, auto-disable).  The 0009 signature stays, computing
-- the start as before and counting every failure, for an API replica older than this migration
-- during a rolling upgrade.

CREATE FUNCTION webhook_record(p_delivery uuid, p_attempt integer, p_ok boolean, p_status integer,
                               p_error text, p_duration_ms integer, p_backoff_ms bigint,
                               p_backoff_max_ms bigint, p_window_s bigint, p_disable_after integer,
                               p_dispatcher text, p_started_at timestamptz, p_streak boolean)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    d webhook_deliveries;
    delay double precision;
    st text;
    n integer;
    en boolean;
BEGIN
    -- Locks in the order DELETE of an endpoint takes them (the endpoint, then by cascade its
    -- deliveries), so the two cannot deadlock; records of one endpoint are serialised by it.
    PERFORM 1 FROM webhook_endpoints
        WHERE id = (SELECT endpoint_id FROM webhook_deliveries WHERE id = p_delivery)
        FOR NO KEY UPDATE;
    SELECT * INTO d FROM webhook_deliveries
        WHERE id = p_delivery AND attempts = p_attempt AND state = 'pending' FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'stale';
    END IF;
    INSERT INTO webhook_attempts VALUES (p_delivery, p_attempt, p_started_at, p_duration_ms,
        p_status, p_error, p_dispatcher);
    IF p_ok THEN
        UPDATE webhook_deliveries SET state = 'delivered', delivered_at = clock_timestamp(),
            lease_until = NULL, last_status = p_status, last_error = NULL WHERE id = p_delivery;
        UPDATE webhook_endpoints SET consecutive_failures = 0
            WHERE id = d.endpoint_id AND consecutive_failures <> 0;
        RETURN 'delivered';
    END IF;
    delay := least(p_backoff_ms * 2.0 ^ least(p_attempt - 1, 40), p_backoff_max_ms)
             * (0.5 + random() / 2);
    st := CASE WHEN d.created_at + p_window_s * interval '1 second'
                    < clock_timestamp() + delay * interval '1 millisecond'
               THEN 'failed' ELSE 'pending' END;
    UPDATE webhook_deliveries SET state = st, lease_until = NULL, last_status = p_status,
        last_error = p_error, next_attempt_at = clock_timestamp() + delay * interval '1 millisecond'
        WHERE id = p_delivery;
    -- The later events of this transaction to this endpoint wait for this one anyway: moving
    -- them behind its next attempt keeps them out of the claim's due range meanwhile.
    IF st = 'pending' THEN
        UPDATE webhook_deliveries
            SET next_attempt_at = clock_timestamp() + delay * interval '1 millisecond'
            WHERE endpoint_id = d.endpoint_id AND transaction_id = d.transaction_id
              AND state = 'pending' AND seq > d.seq
              AND next_attempt_at < clock_timestamp() + delay * interval '1 millisecond';
    END IF;
    IF p_streak THEN
        UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1
            WHERE id = d.endpoint_id RETURNING consecutive_failures, enabled INTO n, en;
    ELSE
        SELECT consecutive_failures, enabled INTO n, en FROM webhook_endpoints
            WHERE id = d.endpoint_id;
    END IF;
    IF p_streak AND en AND n >= p_disable_after THEN
        UPDATE webhook_endpoints SET enabled = false, disabled_reason = 'consecutive_failures'
            WHERE id = d.endpoint_id;
        en := false;
    END IF;
    IF NOT en THEN -- disabled now, or meanwhile (an attempt that was already in flight)
        UPDATE webhook_deliveries SET next_attempt_at = 'infinity'
            WHERE endpoint_id = d.endpoint_id AND state = 'pending'
              AND next_attempt_at <> 'infinity';
    END IF;
    RETURN st;
END $$;

CREATE OR REPLACE FUNCTION webhook_record(p_delivery uuid, p_attempt integer, p_ok boolean,
                                          p_status integer, p_error text, p_duration_ms integer,
                                          p_backoff_ms bigint, p_backoff_max_ms bigint,
                                          p_window_s bigint, p_disable_after integer,
                                          p_dispatcher text) RETURNS text
LANGUAGE sql AS $$
    SELECT webhook_record(p_delivery, p_attempt, p_ok, p_status, p_error, p_duration_ms,
                          p_backoff_ms, p_backoff_max_ms, p_window_s, p_disable_after,
                          p_dispatcher,
                          clock_timestamp() - p_duration_ms * interval '1 millisecond', true)
$$;

-- Records a batch of attempts: p_rows is a JSON array of {"id", "endpoint", "attempt", "ok",
-- "status", "error", "ms", "ago_us"} (ago_us: microseconds from the attempt's start to the
-- building of p_rows, by the dispatcher's monotonic clock, so the start is on the database's
-- clock like every other timestamp).  The endpoints of the batch are locked first, in id order
-- (as a DELETE of an endpoint locks it and then by cascade its deliveries), so batches recorded
-- at once and deletions cannot deadlock; a lock not granted within 2 s fails the statement (the
-- dispatcher's leases leave room for that: the attempts are then made again).  The successes, the
-- common case, are recorded set-wise: delivered, their attempts inserted, their endpoints'
-- failure streaks reset.  Then each failure goes through webhook_record (retry schedule,
-- give-up, auto-disable), counting toward the streak only when it started after the last success
-- of its endpoint in the batch; a failure whose record raises an error is skipped (its lease
-- expires and it is attempted again) rather than losing the whole batch.  A row whose delivery
-- was claimed again since (its attempt count moved on) or is no longer pending is skipped, as
-- webhook_record answers 'stale'.  Returns each recorded delivery with its new state.  Every
-- row is reached by its key: with seq and bitmap scans off (see webhook_claim), lagging
-- statistics cannot turn that into a read of the table.
CREATE FUNCTION webhook_record_batch(p_rows json, p_backoff_ms bigint, p_backoff_max_ms bigint,
                                     p_window_s bigint, p_disable_after integer,
                                     p_dispatcher text)
RETURNS TABLE (delivery uuid, state text)
LANGUAGE plpgsql
SET enable_bitmapscan = off SET enable_seqscan = off SET lock_timeout = 2000 AS $$
#variable_conflict use_column
DECLARE
    f record;
    st text;
BEGIN
    PERFORM 1 FROM webhook_endpoints
        WHERE id IN (SELECT x.endpoint FROM json_to_recordset(p_rows) AS x(endpoint uuid))
        ORDER BY id FOR NO KEY UPDATE;
    RETURN QUERY
    WITH x AS (SELECT * FROM json_to_recordset(p_rows) AS x(id uuid, attempt integer, ok boolean,
                                                             status integer, ms integer,
                                                             ago_us bigint)
               WHERE x.ok),
    done AS (UPDATE webhook_deliveries d SET state = 'delivered', delivered_at = clock_timestamp(),
                    lease_until = NULL, last_status = x.status, last_error = NULL
             FROM x WHERE d.id = x.id AND d.attempts = x.attempt AND d.state = 'pending'
             RETURNING d.id, d.endpoint_id, x.attempt, x.status, x.ms, x.ago_us),
    att AS (INSERT INTO webhook_attempts
            SELECT done.id, done.attempt,
                   clock_timestamp() - done.ago_us * interval '1 microsecond', done.ms,
                   done.status, NULL, p_dispatcher FROM done),
    streak AS (UPDATE webhook_endpoints w SET consecutive_failures = 0
               WHERE w.id IN (SELECT endpoint_id FROM done) AND w.consecutive_failures <> 0)
    SELECT done.id, 'delivered'::text FROM done;
    FOR f IN
        SELECT x.*, NOT EXISTS (SELECT 1 FROM json_to_recordset(p_rows) AS y(endpoint uuid,
                                                                              ok boolean,
                                                                              ago_us bigint)
                                WHERE y.ok AND y.endpoint = x.endpoint
                                  AND y.ago_us < x.ago_us) AS counts
        FROM json_to_recordset(p_rows) AS x(id uuid, endpoint uuid, attempt integer, ok boolean,
                                            status integer, error text, ms integer, ago_us bigint)
        WHERE NOT x.ok
        ORDER BY x.ago_us DESC -- in the order the attempts started
    LOOP
        BEGIN
            st := webhook_record(f.id, f.attempt, false, f.status, f.error, f.ms, p_backoff_ms,
                                 p_backoff_max_ms, p_window_s, p_disable_after, p_dispatcher,
                                 clock_timestamp() - f.ago_us * interval '1 microsecond',
                                 f.counts);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'webhook_record_batch: delivery %: %', f.id, SQLERRM;
            CONTINUE;
        END;
        IF st <> 'stale' THEN
            delivery := f.id;
            state := st;
            RETURN NEXT;
        END IF;
    END LOOP;
END $$;

-- Claims up to p_limit due deliveries under one lease of p_lease_ms: each the earliest pending
-- event of its transaction for its endpoint (per-transaction order), oldest due first, rows
-- locked by another claim skipped; their attempt counts are raised.  Returns what an attempt
-- needs, ordered by endpoint (the order webhook_record_batch locks them in).
-- The walk must follow webhook_deliveries_due in order and stop after p_limit rows: a queue
-- table's statistics lag behind it, and with them the planner would rather read every due row,
-- sort them and take the first (13 ms for a backlog of 3,000; the index walk costs the same at
-- any backlog), so this function runs with bitmap scans and sorts off.  now() bounds the
-- index range, so a claim when nothing is due stops at the first future row.
CREATE FUNCTION webhook_claim(p_lease_ms integer, p_limit integer)
RETURNS TABLE (id uuid, attempt integer, endpoint_id uuid, url text, secret text, body text,
               created_us bigint)
LANGUAGE plpgsql
SET enable_bitmapscan = off SET enable_sort = off SET enable_seqscan = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH c AS (SELECT d2.id FROM webhook_deliveries d2
               JOIN webhook_endpoints w2 ON w2.id = d2.endpoint_id AND w2.enabled
               WHERE d2.state = 'pending' AND d2.next_attempt_at <= now()
                 AND (d2.lease_until IS NULL OR d2.lease_until < clock_timestamp())
                 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries p
                                 WHERE p.endpoint_id = d2.endpoint_id
                                   AND p.transaction_id = d2.transaction_id
                                   AND p.state = 'pending' AND p.seq < d2.seq)
               ORDER BY d2.next_attempt_at, d2.seq LIMIT p_limit
               FOR UPDATE OF d2 SKIP LOCKED),
    u AS (UPDATE webhook_deliveries d SET attempts = d.attempts + 1,
                 lease_until = clock_timestamp() + p_lease_ms * interval '1 millisecond'
          FROM c WHERE d.id = c.id
          RETURNING d.id, d.attempts, d.event_id, d.endpoint_id, d.seq)
    SELECT u.id, u.attempts, u.endpoint_id, w.url, w.secret,
           json_build_object('id', e.id, 'type', e.type,
                             'created_at', to_char(e.created_at AT TIME ZONE 'UTC',
                                                   'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                             'transaction_id', e.transaction_id, 'data', e.data)::text,
           (extract(epoch FROM e.created_at) * 1000000)::bigint
    FROM u JOIN webhook_endpoints w ON w.id = u.endpoint_id
    JOIN webhook_events e ON e.id = u.event_id
    ORDER BY u.endpoint_id, u.seq;
END $$;

-- Gives back deliveries a dispatcher claimed but did not attempt (their whole timeout no longer
-- fitted in the lease): p_rows is a JSON array of {"id", "attempt"}.  The claim's attempt count
-- is undone and the lease dropped, unless the delivery was claimed again since.  By key only,
-- like webhook_record_batch.
CREATE FUNCTION webhook_unclaim(p_rows json) RETURNS void
LANGUAGE sql
SET enable_bitmapscan = off SET enable_seqscan = off AS $$
    UPDATE webhook_deliveries d SET attempts = d.attempts - 1, lease_until = NULL
    FROM json_to_recordset(p_rows) AS x(id uuid, attempt integer)
    WHERE d.id = x.id AND d.attempts = x.attempt AND d.state = 'pending'
$$;
