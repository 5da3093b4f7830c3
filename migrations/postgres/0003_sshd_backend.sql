-- Host keys of targets reached through their own sshd (the sshd backend),
-- pinned on first use when no host CA is configured. One row per target;
-- the first replica to insert wins (INSERT … ON CONFLICT DO NOTHING) and
-- every connection compares the key it is offered with this one.
CREATE TABLE host_keys (
    target_id   TEXT PRIMARY KEY,
    public_key  TEXT NOT NULL,   -- OpenSSH line: ALGORITHM BASE64
    fingerprint TEXT NOT NULL,   -- SHA256:…
    first_seen  TEXT NOT NULL    -- RFC 3339, UTC
);

-- What carried each session: "ssm" (SSM documents) or "sshd" (the target's
-- own sshd), and the OS user the sshd backend logged in as. NULL for
-- sessions recorded before.
ALTER TABLE sessions ADD COLUMN backend TEXT;
ALTER TABLE sessions ADD COLUMN os_user TEXT;
