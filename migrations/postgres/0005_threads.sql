-- Threads: one MLS group each (thread_id is the group id). The server
-- keeps the epoch it accepts commits and messages for, the member devices
-- (for authorization and fan-out), one gap-free log of opaque MLS messages
-- per thread, welcomes queued per device, and receipts.
CREATE TABLE thread (
    thread_id TEXT PRIMARY KEY NOT NULL,
    created_by TEXT NOT NULL REFERENCES app_user (user_id),
    created_at_ms BIGINT NOT NULL,
    epoch BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    last_activity_ms BIGINT NOT NULL
);

-- A device's membership: from the commit that added it (joined_seq; 0 for
-- the creator's and the first members) until the one that removed it.
CREATE TABLE thread_member (
    thread_id TEXT NOT NULL REFERENCES thread (thread_id),
    device_id TEXT NOT NULL REFERENCES device (device_id),
    user_id TEXT NOT NULL REFERENCES app_user (user_id),
    joined_seq BIGINT NOT NULL,
    removed_seq BIGINT,
    delivered_seq BIGINT NOT NULL,
    PRIMARY KEY (thread_id, device_id)
);
CREATE INDEX thread_member_by_device ON thread_member (device_id, removed_seq);

-- Entries: kind 'commit' (with its declared change: space-separated
-- device ids) or 'application'. The body is ciphertext.
CREATE TABLE thread_entry (
    thread_id TEXT NOT NULL REFERENCES thread (thread_id),
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('commit', 'application')),
    epoch BIGINT NOT NULL,
    sender_user TEXT NOT NULL,
    sender_device TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    body BYTEA NOT NULL,
    added TEXT,
    removed TEXT,
    PRIMARY KEY (thread_id, seq)
);

CREATE TABLE welcome (
    welcome_id TEXT PRIMARY KEY NOT NULL,
    device_id TEXT NOT NULL REFERENCES device (device_id),
    thread_id TEXT NOT NULL REFERENCES thread (thread_id),
    epoch BIGINT NOT NULL,
    joined_seq BIGINT NOT NULL,
    welcome BYTEA NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX welcome_by_device ON welcome (device_id, created_at_ms);

CREATE TABLE read_receipt (
    thread_id TEXT NOT NULL REFERENCES thread (thread_id),
    user_id TEXT NOT NULL REFERENCES app_user (user_id),
    read_seq BIGINT NOT NULL,
    PRIMARY KEY (thread_id, user_id)
);
