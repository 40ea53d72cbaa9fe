-- The address a session signed in from, for administrators reviewing
-- sessions (NULL for sessions opened before this column existed).
ALTER TABLE session ADD COLUMN client_address TEXT;

-- The organisation's messaging policy, in numbered versions; the highest
-- is current. Versions are never changed or removed.
CREATE TABLE policy_version (
    version BIGINT PRIMARY KEY NOT NULL,
    body TEXT NOT NULL,
    published_at_ms BIGINT NOT NULL,
    published_by TEXT NOT NULL REFERENCES app_user (user_id)
);

-- Who accepted which version, and when (each acceptance is also audited).
CREATE TABLE policy_acceptance (
    user_id TEXT NOT NULL REFERENCES app_user (user_id),
    version BIGINT NOT NULL REFERENCES policy_version (version),
    accepted_at_ms BIGINT NOT NULL,
    device_id TEXT NOT NULL REFERENCES device (device_id),
    PRIMARY KEY (user_id, version)
);
