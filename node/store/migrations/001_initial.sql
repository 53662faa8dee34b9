-- 001: the hub's state (README "Families, nodes and sessions"; PROFILE.md
-- §P7, §P18, §P26, §P34, §P35). Times are Unix seconds (BIGINT), NULL where
-- a time may be missing. Byte strings are BYTEA: SQLite keeps a bound byte
-- string as a BLOB whatever the declared type, so one spelling serves both.
-- A line "-- only: postgres" or "-- only: sqlite" keeps the next line for
-- that dialect alone.

-- The hub's own family: one row.
CREATE TABLE family (
    singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
    root_key   BYTEA   NOT NULL CHECK (length(root_key) = 32),
    family_id  BYTEA   NOT NULL CHECK (length(family_id) = 16),
    created_at BIGINT  NOT NULL
);

-- Enrolled nodes. A revocation is permanent: a revoked node enrols again
-- under a new node ID.
CREATE TABLE nodes (
    node_id     BYTEA   PRIMARY KEY CHECK (length(node_id) = 16),
    name        TEXT    NOT NULL,
    role        INTEGER NOT NULL,
    certificate BYTEA   NOT NULL,
    enrolled_at BIGINT  NOT NULL,
    revoked_at  BIGINT,
    last_seen   BIGINT
);

-- Devices the nodes announce. capabilities and state are JSON text.
CREATE TABLE devices (
    device_id    TEXT    PRIMARY KEY,
    owner        BYTEA   NOT NULL CHECK (length(owner) = 16),
    kind         TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    capabilities TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    announced_at BIGINT  NOT NULL,
    available    BOOLEAN NOT NULL
);
CREATE INDEX devices_owner_idx ON devices (owner);

-- Routes from a client node to a device.
CREATE TABLE routes (
    -- only: postgres
    route_id   BIGSERIAL PRIMARY KEY,
    -- only: sqlite
    route_id   INTEGER   PRIMARY KEY AUTOINCREMENT,
    device_id  TEXT      NOT NULL,
    client_id  BYTEA     NOT NULL CHECK (length(client_id) = 16),
    priority   INTEGER   NOT NULL,
    created_at BIGINT    NOT NULL
);
CREATE INDEX routes_device_idx ON routes (device_id);

-- Access of a node to a device (draft §6.2.4): 0 none, 1 read-only,
-- 2 write-only, 3 read-write, 4 exclusive.
CREATE TABLE acls (
    device_id  TEXT    NOT NULL,
    node_id    BYTEA   NOT NULL CHECK (length(node_id) = 16),
    mode       INTEGER NOT NULL CHECK (mode BETWEEN 0 AND 4),
    granted_at BIGINT  NOT NULL,
    PRIMARY KEY (device_id, node_id)
);

-- Ticket nonces of accepted resumption tickets, kept until the ticket
-- expires (§P18: tickets are single-use).
CREATE TABLE used_tickets (
    nonce      BYTEA  PRIMARY KEY CHECK (length(nonce) = 8),
    expires_at BIGINT NOT NULL
);
CREATE INDEX used_tickets_expires_idx ON used_tickets (expires_at);

-- Ticket-encryption keys (§P18). key_id is a u32 on the wire, hence BIGINT.
CREATE TABLE ticket_keys (
    key_id     BIGINT PRIMARY KEY,
    secret     BYTEA  NOT NULL CHECK (length(secret) = 32),
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);

-- Each node's sessions, for its availability (§P26).
CREATE TABLE sessions_log (
    -- only: postgres
    session_id      BIGSERIAL PRIMARY KEY,
    -- only: sqlite
    session_id      INTEGER   PRIMARY KEY AUTOINCREMENT,
    node_id         BYTEA     NOT NULL CHECK (length(node_id) = 16),
    connected_at    BIGINT    NOT NULL,
    disconnected_at BIGINT
);
CREATE INDEX sessions_log_node_idx ON sessions_log (node_id, connected_at);
