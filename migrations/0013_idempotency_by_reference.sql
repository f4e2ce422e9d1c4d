-- 0013_idempotency_by_reference: an idempotency record names its transaction instead of holding a
-- copy of the answer (issue 11: a decision's WAL).
--
-- A keyed decision recorded its 201 answer, the transaction's whole JSON (~1.8 KB), beside the
-- transaction row itself, in the same database transaction.  Measured at 500 decisions/s on
-- durable PostgreSQL (http_webhooks.sh's "none" runs): 4.2 KB of WAL a decision with an
-- Idempotency-Key, 2.1 KB without one, and the COMMIT waits for all of it to be flushed.
--
-- Now a record made by this version holds transaction_id and no response_body; the replay reads
-- the transaction in the same statement that finds the record and prints it with its label
-- columns as NULL (the label is the only thing that changes a stored transaction, and a decision
-- is answered before any label), which is the original answer byte for byte (PostgreSQL prints
-- the row's numbers the same way both times unless its extra_float_digits is changed between
-- them; GET /api/v1/transactions/{id} has always depended on the same).  Records made
-- before this migration keep their response_body and are replayed from it, as before.
-- There is no foreign key: transactions are never deleted (a user with any cannot be), and a
-- key check would lock the transaction row in every decision.
--
-- Upgrading: an API older than this migration replays a record without response_body as an
-- empty 201 body.  So do not run older API processes beside newer ones against one database
-- once this migration is applied: stop the old ones first (README, Operations).
ALTER TABLE idempotency_keys ALTER COLUMN response_body DROP NOT NULL;
ALTER TABLE idempotency_keys ADD COLUMN transaction_id uuid;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_answer
    CHECK ((response_body IS NULL) <> (transaction_id IS NULL));
