-- Encrypted attachments: the ciphertext of a file, uploaded by a member
-- to a thread, stored in the database in chunks (so that replicas on one
-- PostgreSQL share them, and neither an upload nor a download is ever
-- held whole in memory). `complete_at_ms` is set when the whole body has
-- arrived; `entry_seq` when a message that carries it is appended. A
-- recall, a lifespan or the retention policy sets `deleted_at_ms` (no one
-- is served it from then on), and its chunks, then its row, are deleted
-- a few at a time in short transactions of their own.
CREATE TABLE attachment (
    attachment_id TEXT PRIMARY KEY NOT NULL,
    thread_id TEXT NOT NULL REFERENCES thread (thread_id),
    uploader_user TEXT NOT NULL,
    uploader_device TEXT NOT NULL,
    size BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    complete_at_ms BIGINT,
    entry_seq BIGINT,
    deleted_at_ms BIGINT
);
CREATE INDEX attachment_by_entry ON attachment (thread_id, entry_seq);
CREATE INDEX attachment_by_uploader ON attachment (uploader_user);
CREATE INDEX attachment_by_age ON attachment (created_at_ms);

CREATE TABLE attachment_chunk (
    attachment_id TEXT NOT NULL REFERENCES attachment (attachment_id),
    idx BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (attachment_id, idx)
);

-- Disappearing messages: a thread's lifespan, set by its members, applies
-- to the messages sent while it is in force (the `lifespan` entries of the
-- log, and `thread_lifespan`, say which); the sweep erases each when older than its lifespan.
-- `lifespan_since_seq` is the first lifespan entry (NULL: never had one);
-- `lifespan_through_seq` and `retention_through_seq` say how far the
-- sweep has passed for each rule, so that no pass reads the same entries
-- again.
ALTER TABLE thread ADD COLUMN lifespan_ms BIGINT;
ALTER TABLE thread ADD COLUMN lifespan_since_seq BIGINT;
ALTER TABLE thread ADD COLUMN lifespan_through_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE thread ADD COLUMN retention_through_seq BIGINT NOT NULL DEFAULT 0;

-- The log gets `lifespan` entries (the new lifespan, or NULL for off), and
-- messages the sweep erased say when (`purged_at_ms`; their body is
-- emptied).
ALTER TABLE thread_entry DROP CONSTRAINT thread_entry_kind_check;
ALTER TABLE thread_entry ADD CONSTRAINT thread_entry_kind_check
    CHECK (kind IN ('commit', 'application', 'recall', 'lifespan'));
ALTER TABLE thread_entry ADD COLUMN lifespan_ms BIGINT;
ALTER TABLE thread_entry ADD COLUMN purged_at_ms BIGINT;

-- A thread's changes of lifespan (as its `lifespan` entries), for the
-- sweep to read without reading the whole log, and with no index on the
-- log for it (every message would pay for it).
CREATE TABLE thread_lifespan (
    thread_id TEXT NOT NULL REFERENCES thread (thread_id),
    seq BIGINT NOT NULL,
    lifespan_ms BIGINT,
    PRIMARY KEY (thread_id, seq)
);

-- The organisation's retention policy (one row; NULL max age: off).
CREATE TABLE retention_policy (
    policy_row INTEGER PRIMARY KEY NOT NULL CHECK (policy_row = 1),
    max_age_ms BIGINT,
    updated_at_ms BIGINT,
    updated_by TEXT
);
INSERT INTO retention_policy (policy_row) VALUES (1);

-- Legal holds on a thread or a user (every thread they are or were a
-- member of): while one is not lifted, nothing it covers is purged.
CREATE TABLE legal_hold (
    hold_id TEXT PRIMARY KEY NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('thread', 'user')),
    target_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    placed_by TEXT NOT NULL,
    placed_at_ms BIGINT NOT NULL,
    lifted_by TEXT,
    lifted_at_ms BIGINT
);
CREATE INDEX legal_hold_by_target ON legal_hold (scope, target_id);

-- Messages recalled while a legal hold covered them: the recall tells
-- every client at once, but their ciphertext (and attachments) stay until
-- no hold covers them; then the sweep erases them and deletes the row.
CREATE TABLE erasure_due (
    thread_id TEXT NOT NULL REFERENCES thread (thread_id),
    seq BIGINT NOT NULL,
    PRIMARY KEY (thread_id, seq)
);

-- Attachments are ciphertext: compressing them is wasted work.
ALTER TABLE attachment_chunk ALTER COLUMN data SET STORAGE EXTERNAL;
