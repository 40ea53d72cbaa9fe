-- The audit log's latest checkpoint each of its witnesses cosigned (C2SP
-- tlog-witness): per witness (its verifier key), the checkpoint with the
-- witness's cosignature line, evidence that someone outside the server saw
-- that tree and every tree before it. A log rewound below a size a
-- witness cosigned cannot get a cosignature again from that witness.
CREATE TABLE audit_cosignature (
    witness TEXT NOT NULL,
    size BIGINT NOT NULL,
    note TEXT NOT NULL,
    cosigned_at_ms BIGINT NOT NULL,
    PRIMARY KEY (witness)
);

-- What a client proved with its own key, kept in the entry it signed for
-- (a delivered or read receipt's device signature); NULL for the rest.
ALTER TABLE audit_entry ADD COLUMN evidence TEXT;
