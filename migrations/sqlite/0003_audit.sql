-- The audit log: one hash-chained, gap-free sequence of entries, its head
-- (the lock every append takes, and the last hash), and signed checkpoints.
-- Nothing updates or deletes entries.
CREATE TABLE audit_entry (
    seq BIGINT PRIMARY KEY NOT NULL,
    time_ms BIGINT NOT NULL,
    actor_user TEXT,
    actor_device TEXT,
    client_addr TEXT,
    request_id TEXT NOT NULL,
    action TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('allowed', 'denied')),
    reason TEXT NOT NULL,
    entry_hash BLOB NOT NULL
);
CREATE INDEX audit_entry_by_actor ON audit_entry (actor_user, seq);
CREATE INDEX audit_entry_by_resource ON audit_entry (resource_id, seq);
CREATE INDEX audit_entry_by_time ON audit_entry (time_ms, seq);

CREATE TABLE audit_head (
    head_row BIGINT PRIMARY KEY NOT NULL CHECK (head_row = 1),
    seq BIGINT NOT NULL,
    entry_hash BLOB NOT NULL,
    checkpoint_seq BIGINT NOT NULL,
    checkpoint_hash BLOB NOT NULL,
    checkpoint_time_ms BIGINT NOT NULL
);
INSERT INTO audit_head (head_row, seq, entry_hash, checkpoint_seq, checkpoint_hash, checkpoint_time_ms)
VALUES (1, 0, X'0000000000000000000000000000000000000000000000000000000000000000', 0, X'0000000000000000000000000000000000000000000000000000000000000000', 0);

CREATE TABLE audit_checkpoint (
    seq BIGINT PRIMARY KEY NOT NULL,
    head_hash BLOB NOT NULL,
    time_ms BIGINT NOT NULL,
    prev_checkpoint_hash BLOB NOT NULL,
    signature BLOB NOT NULL
);
