-- A login challenge is issued for any well-formed device id, enrolled or
-- not, so that asking for one tells no one which devices exist: its device
-- need no longer be a row of `device`. Expired challenges are swept, by
-- their expiry.
CREATE TABLE login_challenge_any (
    challenge_id TEXT PRIMARY KEY NOT NULL,
    device_id TEXT NOT NULL,
    nonce BLOB NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    used_at_ms BIGINT
);
INSERT INTO login_challenge_any (challenge_id, device_id, nonce, created_at_ms, expires_at_ms, used_at_ms)
SELECT challenge_id, device_id, nonce, created_at_ms, expires_at_ms, used_at_ms FROM login_challenge;
DROP TABLE login_challenge;
ALTER TABLE login_challenge_any RENAME TO login_challenge;
CREATE INDEX login_challenge_by_expiry ON login_challenge (expires_at_ms);
