-- Reason grants (`ssh USER@GATEWAY reason 'INC-123 why' --for 2h`): a reason
-- for access given once, used by the user's channels that carry none of
-- their own (ssh -J/-W/-L/-D, commands without SetEnv) until it expires or
-- is revoked. Kept in the database so every replica sees the same grants.
-- Times are RFC 3339 UTC with microseconds, always six digits
-- ("2026-12-03T10:00:00.000000Z"), so that text order is time order in
-- both dialects.
CREATE TABLE reason_grants (
    id             TEXT PRIMARY KEY,      -- UUID
    user_name      TEXT NOT NULL,
    reason         TEXT NOT NULL,         -- checked against [justification]
    target_pattern TEXT,                  -- NULL = every target
    source_ip      TEXT NOT NULL,         -- where the grant was made from
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    revoked_at     TEXT                   -- NULL while not revoked
);
CREATE INDEX reason_grants_user ON reason_grants (user_name, expires_at);
