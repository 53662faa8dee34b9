-- 002: outstanding pairing codes (PROFILE.md §P35), so that
-- `myclerk-bridge invite` can make a code for a running hub. A code is a
-- short-lived secret: it is deleted when used or expired.
CREATE TABLE pairing_codes (
    code       TEXT    PRIMARY KEY,
    role       INTEGER NOT NULL,
    expires_at BIGINT  NOT NULL
);
