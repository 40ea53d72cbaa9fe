-- MLS KeyPackages that devices publish so that others can add them to
-- threads. Each ordinary package is handed out once (claimed_at_ms is set);
-- a device's one last-resort package is handed out when it has no other
-- left, and stays. Packages are opaque to the server.
CREATE TABLE key_package (
    package_id TEXT PRIMARY KEY NOT NULL,
    device_id TEXT NOT NULL REFERENCES device (device_id),
    package BLOB NOT NULL,
    last_resort BIGINT NOT NULL CHECK (last_resort IN (0, 1)),
    uploaded_at_ms BIGINT NOT NULL,
    claimed_at_ms BIGINT
);
CREATE INDEX key_package_by_device ON key_package (device_id, last_resort, claimed_at_ms);
