-- Single-use tickets that open the live-events WebSocket (`GET /v1/events`)
-- from a browser, whose WebSocket cannot send an Authorization header. A
-- signed-in device asks for one (`POST /v1/events/ticket`) and offers it
-- as a WebSocket subprotocol within 30 s; it is kept only as its SHA-256,
-- taken (deleted) by the one upgrade that uses it, and swept once expired.
CREATE TABLE events_ticket (
    ticket_hash BYTEA PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE INDEX events_ticket_expiry ON events_ticket (expires_at_ms);
