-- Clinical workflow (issue 21): urgent messages, their acknowledgements
-- and escalation; roles held in shifts; escalation policies per
-- department; users an escalation asked into a thread; devices' push
-- tokens; and which former members' devices a commit has removed from
-- the MLS group.

-- An urgent message: metadata the server sees to escalate (never content).
ALTER TABLE thread_entry ADD COLUMN urgent BIGINT NOT NULL DEFAULT 0;

-- Set when a commit removed the device from the MLS group (for a
-- member removed by a commit, that commit); NULL for a former member
-- (left, deactivated, device removed) still in the group.
ALTER TABLE thread_member ADD COLUMN evicted_seq BIGINT;
UPDATE thread_member SET evicted_seq = removed_seq WHERE removed_reason = 'removed';
-- A former member whose removal a later commit declared (the CLI removes
-- someone who left before adding them back) is out of the group too.
UPDATE thread_member SET evicted_seq = (
    SELECT MIN(e.seq) FROM thread_entry e
    WHERE e.thread_id = thread_member.thread_id AND e.kind = 'commit'
      AND e.seq >= thread_member.removed_seq
      AND (' ' || e.removed || ' ') LIKE ('% ' || thread_member.device_id || ' %'))
WHERE removed_seq IS NOT NULL AND evicted_seq IS NULL;
CREATE INDEX thread_member_to_evict ON thread_member (thread_id)
    WHERE removed_seq IS NOT NULL AND evicted_seq IS NULL;

CREATE TABLE urgent_message (
    thread_id TEXT NOT NULL REFERENCES thread (thread_id),
    seq BIGINT NOT NULL,
    sender_user TEXT NOT NULL,
    sent_at_ms BIGINT NOT NULL,
    stage TEXT NOT NULL CHECK (stage IN ('sent', 'realerted', 'escalated', 'acknowledged')),
    -- When the escalation's next step is due; NULL once none is left.
    next_step_ms BIGINT,
    realert_at_ms BIGINT,
    escalate_at_ms BIGINT,
    -- The policy's backup, as it was when the message was sent.
    backup_role TEXT,
    backup_user TEXT,
    -- Whom the escalation reached.
    escalated_to TEXT,
    PRIMARY KEY (thread_id, seq)
);
CREATE INDEX urgent_message_due ON urgent_message (next_step_ms);

CREATE TABLE urgent_ack (
    thread_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    user_id TEXT NOT NULL REFERENCES app_user (user_id),
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (thread_id, seq, user_id)
);

CREATE TABLE clinical_role (
    role_id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    department TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE role_shift (
    shift_id TEXT PRIMARY KEY NOT NULL,
    role_id TEXT NOT NULL REFERENCES clinical_role (role_id),
    user_id TEXT NOT NULL REFERENCES app_user (user_id),
    starts_at_ms BIGINT NOT NULL,
    ends_at_ms BIGINT NOT NULL,
    timezone TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    cancelled_at_ms BIGINT
);
CREATE INDEX role_shift_by_role ON role_shift (role_id, ends_at_ms);

CREATE TABLE escalation_policy (
    department TEXT PRIMARY KEY NOT NULL,
    realert_after_ms BIGINT NOT NULL,
    escalate_after_ms BIGINT NOT NULL,
    backup_role TEXT,
    backup_user TEXT,
    updated_by TEXT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- A user an escalation asked into a thread: member clients add their
-- devices; done once a commit has.
CREATE TABLE thread_invite (
    thread_id TEXT NOT NULL REFERENCES thread (thread_id),
    user_id TEXT NOT NULL REFERENCES app_user (user_id),
    urgent_seq BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    done_seq BIGINT,
    PRIMARY KEY (thread_id, user_id, urgent_seq)
);

CREATE TABLE push_token (
    device_id TEXT PRIMARY KEY NOT NULL REFERENCES device (device_id),
    app_id TEXT NOT NULL,
    token TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
