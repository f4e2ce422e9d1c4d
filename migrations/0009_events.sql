-- 0009_events: the review queue and webhooks through a transactional outbox (issue 15).
--
-- reviews: one per transaction decided `review`, opened in the decision's own transaction.
-- webhook_endpoints: where events go, which types, the signing secret, the failure streak.
-- webhook_events: the outbox.  A row is written by webhook_emit in the SAME database transaction
--   as the decision, review or label that causes it, and only when some enabled endpoint
--   subscribes to its type (an event nobody receives is not stored).  seq orders the events.
-- webhook_deliveries: one per (event, endpoint), fanned out by webhook_emit; the dispatcher claims
--   due ones (FOR UPDATE SKIP LOCKED + a lease), one per transaction and endpoint at a time.
-- webhook_attempts: every HTTP attempt of a delivery; (delivery_id, attempt) is unique, so no
--   attempt is recorded twice whatever the number of dispatching replicas.

CREATE TABLE reviews (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    transaction_id uuid NOT NULL UNIQUE REFERENCES transactions (id),
    state        text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'claimed', 'closed')),
    opened_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    claimed_by   uuid,                                   -- the API key that claimed it
    claimed_at   timestamptz,
    closed_by    uuid,                                   -- the API key that closed it
    closed_at    timestamptz,
    outcome      text CHECK (outcome IN ('approved', 'refunded', 'fraud')),
    note         text CHECK (length(note) <= 2000),
    CHECK ((state = 'open') = (claimed_by IS NULL)),
    CHECK ((state = 'closed') = (closed_at IS NOT NULL AND outcome IS NOT NULL))
);
CREATE INDEX reviews_queue ON reviews (state, opened_at, id);
CREATE INDEX reviews_closed ON reviews (closed_at DESC, id DESC) WHERE state = 'closed';

-- The one JSON shape of a review (the API's answers and the review.* events).
CREATE FUNCTION review_json(r reviews) RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', r.id, 'transaction_id', r.transaction_id, 'state', r.state,
        'opened_at', to_char(r.opened_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'claimed_by', r.claimed_by,
        'claimed_at', to_char(r.claimed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'closed_by', r.closed_by,
        'closed_at', to_char(r.closed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'outcome', r.outcome, 'note', r.note)
$$;

CREATE TABLE webhook_endpoints (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    url          text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description  text CHECK (length(description) <= 512),
    events       text[] NOT NULL CHECK (cardinality(events) BETWEEN 1 AND 32),
    secret       text NOT NULL,
    enabled      boolean NOT NULL DEFAULT true,
    disabled_reason text CHECK (disabled_reason IN ('manual', 'consecutive_failures')),
    consecutive_failures integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX webhook_endpoints_created ON webhook_endpoints (created_at DESC, id DESC);

CREATE TABLE webhook_events (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    seq          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    type         text NOT NULL,
    transaction_id uuid NOT NULL,
    data         json NOT NULL,                          -- the object, as the API shows it
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX webhook_events_created ON webhook_events (created_at);

CREATE TABLE webhook_deliveries (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id     uuid NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    endpoint_id  uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    seq          bigint NOT NULL,                        -- the event's seq
    transaction_id uuid NOT NULL,                        -- the event's transaction
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts     integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    lease_until  timestamptz,                            -- claimed by a dispatcher until then
    last_status  integer,
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    delivered_at timestamptz,
    UNIQUE (event_id, endpoint_id)
);
-- The dispatcher's claim walks this index in its ORDER BY, so a claim costs O(rows skipped), never
-- a sort of the whole backlog.  Deliveries of a disabled endpoint are parked at 'infinity'
-- (webhook_record, PATCH), so a large backlog behind a disabled endpoint is never walked.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, seq)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, transaction_id, seq)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);

CREATE TABLE webhook_attempts (
    delivery_id  uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    started_at   timestamptz NOT NULL,
    duration_ms  integer NOT NULL,
    response_status integer,                             -- NULL: no HTTP answer
    error        text,
    dispatcher   text NOT NULL,                          -- host:pid of the replica that sent it
    PRIMARY KEY (delivery_id, attempt)
);

-- Writes event p_type about transaction p_txn with object p_data, and one delivery per enabled
-- endpoint subscribed to p_type, in the caller's transaction.  Returns the number of deliveries.
CREATE FUNCTION webhook_emit(p_type text, p_txn uuid, p_data json) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    ev webhook_events;
    n integer;
BEGIN
    PERFORM 1 FROM webhook_endpoints WHERE enabled AND p_type = ANY (events) LIMIT 1;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    INSERT INTO webhook_events (type, transaction_id, data) VALUES (p_type, p_txn, p_data)
        RETURNING * INTO ev;
    INSERT INTO webhook_deliveries (event_id, endpoint_id, seq, transaction_id)
        SELECT ev.id, w.id, ev.seq, p_txn FROM webhook_endpoints w
        WHERE w.enabled AND p_type = ANY (w.events);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- What a decision adds in its own transaction: the decision.<outcome> event and, for `review`,
-- the review and its review.opened event.
CREATE FUNCTION decision_events(p_txn uuid, p_decision text, p_data json) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    r reviews;
BEGIN
    PERFORM webhook_emit('decision.' || p_decision, p_txn, p_data);
    IF p_decision = 'review' THEN
        INSERT INTO reviews (transaction_id) VALUES (p_txn) RETURNING * INTO r;
        PERFORM webhook_emit('review.opened', p_txn, review_json(r));
    END IF;
END $$;

-- Records attempt p_attempt of delivery p_delivery (a no-op answering 'stale' when the delivery
-- was claimed again since): delivered, or pending again after
-- min(p_backoff_ms * 2^(attempt-1), p_backoff_max_ms) times a jitter factor in [0.5, 1), or
-- failed when that would pass p_window_s after the event.  The endpoint's failure streak is reset
-- by a success and grows by a failure; at p_disable_after it is disabled and its pending
-- deliveries parked (next_attempt_at 'infinity', until it is enabled again).  Returns the new
-- state.
CREATE FUNCTION webhook_record(p_delivery uuid, p_attempt integer, p_ok boolean, p_status integer,
                               p_error text, p_duration_ms integer, p_backoff_ms bigint,
                               p_backoff_max_ms bigint, p_window_s bigint, p_disable_after integer,
                               p_dispatcher text) RETURNS text
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
    INSERT INTO webhook_attempts VALUES (p_delivery, p_attempt,
        clock_timestamp() - p_duration_ms * interval '1 millisecond', p_duration_ms, p_status,
        p_error, p_dispatcher);
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
    UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1
        WHERE id = d.endpoint_id RETURNING consecutive_failures, enabled INTO n, en;
    IF en AND n >= p_disable_after THEN
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
