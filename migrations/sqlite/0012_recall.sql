-- Recall ("delete for everyone"): the sender's recall erases a message's
-- ciphertext (its body is emptied, with secure_delete on, and the log is
-- truncated after) and appends a `recall` entry naming it (`recalls`),
-- which every member's client reads in the log and pushes tell at once.
-- SQLite cannot change a CHECK constraint in place, so the log is copied
-- into a table that allows the new kind (once, at upgrade: it takes time
-- in proportion to the log).
CREATE TABLE thread_entry_new (
    thread_id TEXT NOT NULL REFERENCES thread (thread_id),
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('commit', 'application', 'recall')),
    epoch BIGINT NOT NULL,
    sender_user TEXT NOT NULL,
    sender_device TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    body BLOB NOT NULL,
    added TEXT,
    removed TEXT,
    recalls BIGINT,
    recalled_at_ms BIGINT,
    PRIMARY KEY (thread_id, seq)
);
INSERT INTO thread_entry_new (thread_id, seq, kind, epoch, sender_user, sender_device,
    created_at_ms, body, added, removed)
SELECT thread_id, seq, kind, epoch, sender_user, sender_device, created_at_ms, body, added,
    removed
FROM thread_entry;
DROP TABLE thread_entry;
ALTER TABLE thread_entry_new RENAME TO thread_entry;
