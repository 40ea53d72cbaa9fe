-- MLS KeyPackages that devices publish so that others can add them to
-- threads. An ordinary package is deleted as it is handed out (claims never
-- share one, and used key material does not linger); a device's one
-- last-resort package is handed out when it has no other left, and stays.
-- Packages are opaque to the server.
CREATE TABLE key_package (
    package_id TEXT PRIMARY KEY NOT NULL,
    device_id TEXT NOT NULL REFERENCES device (device_id),
    package BLOB NOT NULL,
    last_resort BIGINT NOT NULL CHECK (last_resort IN (0, 1)),
    uploaded_at_ms BIGINT NOT NULL
);
CREATE INDEX key_package_by_device ON key_package (device_id, last_resort, uploaded_at_ms);
CREATE UNIQUE INDEX key_package_one_last_resort ON key_package (device_id) WHERE last_resort = 1;
