-- Users, their devices, one-time enrollment codes, login challenges and
-- sessions. Times are Unix milliseconds; ids are 32 hex digits.
CREATE TABLE app_user (
    user_id TEXT PRIMARY KEY NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('clinician', 'admin', 'auditor')),
    department TEXT NOT NULL,
    licence_number TEXT,
    status TEXT NOT NULL CHECK (status IN ('active', 'deactivated')),
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE device (
    device_id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES app_user (user_id),
    device_name TEXT NOT NULL,
    public_key BLOB NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL,
    removed_at_ms BIGINT
);
CREATE INDEX device_by_user ON device (user_id);

-- Only the SHA-256 of a code is kept. A code with no user_id is a
-- first-administrator code: enrolling with it creates the user.
CREATE TABLE enrollment_code (
    code_hash BLOB PRIMARY KEY NOT NULL,
    user_id TEXT REFERENCES app_user (user_id),
    bootstrap_role TEXT CHECK (bootstrap_role IN ('admin')),
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    used_at_ms BIGINT,
    CHECK ((user_id IS NULL) <> (bootstrap_role IS NULL))
);

CREATE TABLE login_challenge (
    challenge_id TEXT PRIMARY KEY NOT NULL,
    device_id TEXT NOT NULL REFERENCES device (device_id),
    nonce BLOB NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    used_at_ms BIGINT
);

CREATE TABLE session (
    session_id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES app_user (user_id),
    device_id TEXT NOT NULL REFERENCES device (device_id),
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    last_seen_at_ms BIGINT NOT NULL,
    ended_at_ms BIGINT,
    end_reason TEXT
);
CREATE INDEX session_by_user ON session (user_id);
CREATE INDEX session_by_device ON session (device_id);
