-- The installation this database belongs to: exactly one row, made at the
-- first start. Its id names the server in signed messages and tokens.
CREATE TABLE installation (
    installation_row BIGINT PRIMARY KEY NOT NULL CHECK (installation_row = 1),
    installation_id TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
