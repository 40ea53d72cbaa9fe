-- Recall ("delete for everyone"): the sender's recall erases a message's
-- ciphertext (its body is emptied) and appends a `recall` entry naming it
-- (`recalls`), which every member's client reads in the log and pushes
-- tell at once.
ALTER TABLE thread_entry DROP CONSTRAINT thread_entry_kind_check;
ALTER TABLE thread_entry ADD CONSTRAINT thread_entry_kind_check
    CHECK (kind IN ('commit', 'application', 'recall'));
ALTER TABLE thread_entry ADD COLUMN recalls BIGINT;
ALTER TABLE thread_entry ADD COLUMN recalled_at_ms BIGINT;
