-- 0012_webhook_plans: the dispatcher's statements reach every row by a key (issue 15's speed).
--
-- Measured under load (auto_explain, 500 decisions/s with one endpoint subscribed): the queue
-- table's statistics lag behind it (the planner estimates 1-3 rows), and with them
--  * webhook_claim's per-transaction-order check ("no earlier pending delivery of this
--    transaction for this endpoint") walked the whole of webhook_deliveries_due once per
--    candidate instead of probing webhook_deliveries_order: 10,000 buffer reads and ~30 ms of
--    CPU per claim of 32;
--  * webhook_record_batch and webhook_unclaim joined their JSON rows to the deliveries by a
--    hash join (or a nested loop over a materialised copy) of a full walk of
--    webhook_deliveries_due instead of a primary-key probe per row: O(backlog) per batch.
-- The check is now "this delivery is the first pending one of its (endpoint, transaction)",
-- asked in the order of webhook_deliveries_order with sorts off, which only that index can
-- answer without a sort.  The record and the give-back say "not delivered and not failed" for
-- "pending" (the same rows: the column's CHECK allows three states), which the partial indexes'
-- predicates cannot be proved from, so the primary key is the only index that can find a JSON
-- row's delivery, and all three run with hash and merge joins off, so that probe is made per
-- row by a nested loop.  Semantics are unchanged: a due delivery is claimed only when no earlier
-- event of its transaction is pending for its endpoint.  Measured after: 1,400 buffer reads for
-- a claim of 32 that walked 128 due rows (the other threads' leased ones), 96 for a record.

CREATE OR REPLACE FUNCTION webhook_claim(p_lease_ms integer, p_limit integer)
RETURNS TABLE (id uuid, attempt integer, endpoint_id uuid, url text, secret text, body text,
               created_us bigint)
LANGUAGE plpgsql
SET enable_bitmapscan = off SET enable_sort = off SET enable_seqscan = off
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH c AS (SELECT d2.id FROM webhook_deliveries d2
               JOIN webhook_endpoints w2 ON w2.id = d2.endpoint_id AND w2.enabled
               WHERE d2.state = 'pending' AND d2.next_attempt_at <= now()
                 AND (d2.lease_until IS NULL OR d2.lease_until < clock_timestamp())
                 AND d2.seq = (SELECT p.seq FROM webhook_deliveries p
                               WHERE p.endpoint_id = d2.endpoint_id
                                 AND p.transaction_id = d2.transaction_id
                                 AND p.state = 'pending'
                               ORDER BY p.endpoint_id, p.transaction_id, p.seq LIMIT 1)
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

CREATE OR REPLACE FUNCTION webhook_record_batch(p_rows json, p_backoff_ms bigint,
                                                p_backoff_max_ms bigint, p_window_s bigint,
                                                p_disable_after integer, p_dispatcher text)
RETURNS TABLE (delivery uuid, state text)
LANGUAGE plpgsql
SET enable_bitmapscan = off SET enable_seqscan = off SET lock_timeout = 2000
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
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
             FROM x WHERE d.id = x.id AND d.attempts = x.attempt
               AND d.state NOT IN ('delivered', 'failed')
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

CREATE OR REPLACE FUNCTION webhook_unclaim(p_rows json) RETURNS void
LANGUAGE sql
SET enable_bitmapscan = off SET enable_seqscan = off
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
    UPDATE webhook_deliveries d SET attempts = d.attempts - 1, lease_until = NULL
    FROM json_to_recordset(p_rows) AS x(id uuid, attempt integer)
    WHERE d.id = x.id AND d.attempts = x.attempt AND d.state NOT IN ('delivered', 'failed')
$$;
