-- Who ended a membership, when and how ('removed' by a member's commit,
-- 'left', 'deactivated', 'device_removed'), so that a former member's
-- client can say so.
ALTER TABLE thread_member ADD COLUMN removed_by TEXT;
ALTER TABLE thread_member ADD COLUMN removed_at_ms BIGINT;
ALTER TABLE thread_member ADD COLUMN removed_reason TEXT;

-- A user's name and department folded for search (Unicode to ASCII, lower
-- case), the same on both databases: SQLite's LOWER() folds ASCII only.
-- Written by the server at insert and update; rows made before this
-- migration are filled by the server when it starts.
ALTER TABLE app_user ADD COLUMN search_key TEXT;

-- Codes get an id of their own, so that administrators can list and
-- revoke them without ever seeing one again; a new code revokes the
-- user's older ones unless told otherwise.
ALTER TABLE enrollment_code ADD COLUMN code_id TEXT;
ALTER TABLE enrollment_code ADD COLUMN revoked_at_ms BIGINT;
UPDATE enrollment_code SET code_id = encode(substring(code_hash FROM 1 FOR 16), 'hex');
CREATE UNIQUE INDEX enrollment_code_by_id ON enrollment_code (code_id);
CREATE INDEX enrollment_code_by_user ON enrollment_code (user_id);
