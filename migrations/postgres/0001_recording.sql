-- Session recording and audit (Postgres). Several gateway replicas share
-- these tables; every id is a UUID chosen by the writer.

CREATE TABLE sessions (
    id                  UUID PRIMARY KEY,
    ssm_session_id      TEXT,
    user_name           TEXT NOT NULL,
    auth_method         TEXT NOT NULL,
    key_fingerprint     TEXT,
    cert_key_id         TEXT,
    cert_serial         TEXT,
    cert_ca_fingerprint TEXT,
    source_ip           TEXT NOT NULL,
    source_port         INTEGER NOT NULL CHECK (source_port BETWEEN 0 AND 65535),
    client_version      TEXT,
    target_id           TEXT NOT NULL,
    target_name         TEXT,
    document            TEXT,
    parameters          JSON,
    justification       TEXT,
    aws_reason          TEXT,
    decision            TEXT NOT NULL,
    policy_ids          JSON NOT NULL,
    kind                TEXT NOT NULL,
    recording           TEXT NOT NULL,
    started_at          TIMESTAMPTZ NOT NULL,
    ended_at            TIMESTAMPTZ,
    end_reason          TEXT,
    exit_status         INTEGER,
    bytes_in            BIGINT,
    bytes_out           BIGINT,
    chain_head          BYTEA CHECK (chain_head IS NULL OR length(chain_head) = 32),
    CHECK ((ended_at IS NULL) = (end_reason IS NULL)
       AND (ended_at IS NULL) = (bytes_in IS NULL)
       AND (ended_at IS NULL) = (bytes_out IS NULL))
);

CREATE INDEX sessions_by_start ON sessions (started_at DESC);
CREATE INDEX sessions_by_user ON sessions (user_name, started_at DESC);
CREATE INDEX sessions_by_target ON sessions (target_id, started_at DESC);
CREATE INDEX sessions_by_target_name ON sessions (target_name, started_at DESC);
CREATE INDEX sessions_live ON sessions (started_at) WHERE ended_at IS NULL;

CREATE TABLE session_chunks (
    session_id UUID NOT NULL REFERENCES sessions (id),
    seq        BIGINT NOT NULL CHECK (seq >= 0),
    created_at TIMESTAMPTZ NOT NULL,
    events     BYTEA NOT NULL,
    prev_hash  BYTEA NOT NULL CHECK (length(prev_hash) = 32),
    hash       BYTEA NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE audit_events (
    n          BIGSERIAL PRIMARY KEY,
    id         UUID NOT NULL UNIQUE,
    at         TIMESTAMPTZ NOT NULL,
    kind       TEXT NOT NULL,
    user_name  TEXT,
    -- No foreign key: a refused request has audit events but no session row.
    session_id UUID,
    source_ip  TEXT,
    detail     JSON NOT NULL
);

CREATE INDEX audit_by_session ON audit_events (session_id, at) WHERE session_id IS NOT NULL;
CREATE INDEX audit_by_time ON audit_events (at);
