-- A login challenge is issued for any well-formed device id, enrolled or
-- not, so that asking for one tells no one which devices exist: its device
-- need no longer be a row of `device`. Expired challenges are swept, by
-- their expiry.
ALTER TABLE login_challenge DROP CONSTRAINT login_challenge_device_id_fkey;
CREATE INDEX login_challenge_by_expiry ON login_challenge (expires_at_ms);
