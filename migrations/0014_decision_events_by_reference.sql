-- 0014_decision_events_by_reference: a decision.* event names its transaction instead of copying
-- it (issue 15: what one webhook endpoint costs a decision).
--
-- The outbox row of a decision.* event carried the transaction's whole JSON (~1.8 KB), written
-- in the decision's own database transaction beside the transaction row: most of the WAL one
-- subscribed endpoint adds to every decision.  Now webhook_events.data is NULL for these events
-- (decision_events ignores its p_data, kept for the signature), and the dispatcher prints the
-- transaction as its decision answered it (TXN_COLS_DECIDED: the label's columns NULL, the label
-- being the only thing that changes a stored transaction) when it claims the delivery: the same
-- bytes the API answered, so a delivery's body is what it was.  Every other event (review.*,
-- transaction.labelled: small, or a state that later changes) still stores its object.
--
-- webhook_claim now returns the envelope without its last member and closing brace (envelope)
-- and the object apart (data, NULL for a decision event); the dispatcher appends
-- ', "data" : <object>}', the bytes json_build_object made before.  The column is renamed
-- (body -> envelope) so that an API older than this migration fails its claim loudly instead of
-- sending bodies without their object: as for 0013, stop older replicas before starting a newer
-- one across it.
ALTER TABLE webhook_events ALTER COLUMN data DROP NOT NULL;

CREATE OR REPLACE FUNCTION decision_events(p_txn uuid, p_decision text, p_data json) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r reviews;
BEGIN
    PERFORM webhook_emit('decision.' || p_decision, p_txn, NULL);
    IF p_decision = 'review' THEN
        INSERT INTO reviews (transaction_id) VALUES (p_txn) RETURNING * INTO r;
        PERFORM webhook_emit('review.opened', p_txn, review_json(r));
    END IF;
END $$;

DROP FUNCTION webhook_claim(integer, integer);
CREATE FUNCTION webhook_claim(p_lease_ms integer, p_limit integer)
RETURNS TABLE (id uuid, attempt integer, endpoint_id uuid, url text, secret text, envelope text,
               created_us bigint, data text, transaction_id uuid)
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
           left(json_build_object('id', e.id, 'type', e.type,
                                  'created_at', to_char(e.created_at AT TIME ZONE 'UTC',
                                                        'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                                  'transaction_id', e.transaction_id)::text, -1),
           (extract(epoch FROM e.created_at) * 1000000)::bigint,
           e.data::text, e.transaction_id
    FROM u JOIN webhook_endpoints w ON w.id = u.endpoint_id
    JOIN webhook_events e ON e.id = u.event_id
    ORDER BY u.endpoint_id, u.seq;
END $$;
