-- 003: what the Matrix bridge has applied, so that a homeserver retrying
-- an appservice transaction, or an event, across a bridge restart gets no
-- second effect. Rows are pruned after the homeserver's retry horizon.
CREATE TABLE matrix_txns (
    txn_id      TEXT   PRIMARY KEY,
    applied_at  BIGINT NOT NULL
);
CREATE TABLE matrix_events (
    event_id    TEXT   PRIMARY KEY,
    seen_at     BIGINT NOT NULL
);
CREATE INDEX matrix_txns_applied_at ON matrix_txns (applied_at);
CREATE INDEX matrix_events_seen_at ON matrix_events (seen_at);
