-- Replicas sharing this database (issue 15): each gateway process
-- registers itself and heartbeats, so that `ssmgate sessions list --live`
-- shows where each live session runs, sessions of a replica that stopped
-- heartbeating show as orphaned (and are closed by another replica after
-- a while), and `ssmgate sessions kill` / `users lock` reach the replica
-- that runs a session. Ids are UUID text and times fixed-width RFC 3339
-- UTC text with microseconds (as in reason_grants), so that one statement
-- text serves both dialects and text order is time order.
CREATE TABLE replicas (
    id           TEXT PRIMARY KEY,    -- UUID, new at every start
    address      TEXT NOT NULL,       -- [cluster] advertise, or host:port
    version      TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    stopped_at   TEXT                 -- set by a clean stop
);

-- Which replica runs (ran) a session; NULL for sessions recorded before.
ALTER TABLE sessions ADD COLUMN replica_id TEXT;
-- Why the gateway ended it, when it did: shutdown, killed by …, orphaned
-- (sealed with the end when set).
ALTER TABLE sessions ADD COLUMN end_cause TEXT;

-- Requests to end a live session (`ssmgate sessions kill`, `users lock`),
-- carried out by the replica that runs it.
CREATE TABLE session_kills (
    id           TEXT PRIMARY KEY,    -- UUID
    session_id   TEXT NOT NULL,       -- UUID of the session
    replica_id   TEXT,                -- its replica when asked
    requested_at TEXT NOT NULL,
    requested_by TEXT NOT NULL,       -- who asked (OS user@host of the CLI)
    reason       TEXT NOT NULL,
    done_at      TEXT,                -- when the replica acted
    outcome      TEXT                 -- what it found: ended, not_live
);
CREATE INDEX session_kills_pending ON session_kills (replica_id) WHERE done_at IS NULL;

-- Users refused new sessions until unlocked (`ssmgate users lock NAME`).
CREATE TABLE user_locks (
    user_name TEXT PRIMARY KEY,
    locked_at TEXT NOT NULL,
    locked_by TEXT NOT NULL,
    reason    TEXT NOT NULL
);
