-- Keyed seals (HMAC-SHA256 with a key kept outside the database; see
-- src/recording/seal.rs), stored as KEY_ID:HEX_MAC text. Rows recorded
-- before this migration keep NULL: `sessions verify` reports them as
-- unsealed. Nullable columns without defaults: no table rewrite.

-- The seal of the start fields, the seal of the end, and the chunk count
-- the end seal covers.
ALTER TABLE sessions
    ADD COLUMN start_seal TEXT,
    ADD COLUMN end_seal TEXT,
    ADD COLUMN chunk_count BIGINT CHECK (chunk_count IS NULL OR chunk_count >= 0);

-- The seal of the chunk's chain hash.
ALTER TABLE session_chunks ADD COLUMN seal TEXT;

-- Each recorder (gateway process) writes its own audit chain: chain id,
-- sequence number from 0, and the seal over the event with both. Replicas
-- sharing the database never write to the same chain.
ALTER TABLE audit_events
    ADD COLUMN chain_id UUID,
    ADD COLUMN chain_seq BIGINT,
    ADD COLUMN seal TEXT,
    ADD CONSTRAINT audit_chain_complete CHECK (
        (chain_id IS NULL) = (chain_seq IS NULL) AND (chain_id IS NULL) = (seal IS NULL));

CREATE INDEX audit_by_chain ON audit_events (chain_id, chain_seq) WHERE chain_id IS NOT NULL;
