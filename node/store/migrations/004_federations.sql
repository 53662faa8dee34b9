-- 004: families this hub federates with through Matrix (PROFILE.md §P40).
-- A federation is a room shared by the two families' bridge bots. The peer
-- family's root key is learnt from the room and trusted (pinned_at) only
-- after a person confirmed the code both bridges show. A revocation is
-- permanent for the label's room.
CREATE TABLE federations (
    label       TEXT    PRIMARY KEY,
    room_id     TEXT    NOT NULL UNIQUE,
    peer_bot    TEXT    NOT NULL,
    dialer      INTEGER NOT NULL,
    admin       TEXT    NOT NULL,
    root_key    BYTEA,
    peer_cert   BYTEA,
    created_at  BIGINT  NOT NULL,
    pinned_at   BIGINT,
    revoked_at  BIGINT
);
