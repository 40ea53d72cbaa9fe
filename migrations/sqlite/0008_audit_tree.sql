-- The audit log's Merkle tree (RFC 9162) over its entries. Stored: the
-- roots of its perfect subtrees of 256 leaves or more (smaller ones are
-- hashed from the entries when a proof needs them); in the head row every
-- append takes, the tree's frontier (the roots of the perfect subtrees
-- that make up the whole tree) and its latest signed checkpoint, a C2SP
-- signed note. A log made before this migration has no frontier yet: the
-- server builds it from the entries when it starts.
CREATE TABLE audit_subtree (
    level BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
);
ALTER TABLE audit_head ADD COLUMN tree_frontier BLOB;
ALTER TABLE audit_head ADD COLUMN tree_note TEXT;
UPDATE audit_head SET tree_frontier = X'0000000000000000' WHERE seq = 0;
