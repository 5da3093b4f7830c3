-- Session recording and audit (SQLite). Ids are hyphenated UUID text,
-- timestamps fixed-width UTC text (2026-11-02T10:11:12.123456Z), hashes
-- 32-byte blobs, JSON columns text checked with json_valid.

CREATE TABLE sessions (
    id                  TEXT PRIMARY KEY NOT NULL,
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
    parameters          TEXT CHECK (parameters IS NULL OR json_valid(parameters)),
    justification       TEXT,
    aws_reason          TEXT,
    decision            TEXT NOT NULL,
    policy_ids          TEXT NOT NULL CHECK (json_valid(policy_ids)),
    kind                TEXT NOT NULL,
    recording           TEXT NOT NULL,
    started_at          TEXT NOT NULL,
    ended_at            TEXT,
    end_reason          TEXT,
    exit_status         INTEGER,
    bytes_in            INTEGER,
    bytes_out           INTEGER,
    chain_head          BLOB CHECK (chain_head IS NULL OR length(chain_head) = 32),
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
    session_id TEXT NOT NULL REFERENCES sessions (id),
    seq        INTEGER NOT NULL CHECK (seq >= 0),
    created_at TEXT NOT NULL,
    events     BLOB NOT NULL,
    prev_hash  BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash       BLOB NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;

CREATE TABLE audit_events (
    n          INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    at         TEXT NOT NULL,
    kind       TEXT NOT NULL,
    user_name  TEXT,
    -- No foreign key: a refused request has audit events but no session row.
    session_id TEXT,
    source_ip  TEXT,
    detail     TEXT NOT NULL CHECK (json_valid(detail))
);

CREATE INDEX audit_by_session ON audit_events (session_id, at) WHERE session_id IS NOT NULL;
CREATE INDEX audit_by_time ON audit_events (at);
