//! Limits on the user's reason for access (the justification). The Reason
//! sent to AWS, which the gateway composes around it, has its own limit
//! (`gateway::reason::MAX_AWS_REASON_CHARS`).

/// Longest accepted justification, in characters.
pub const MAX_REASON_CHARS: usize = 200;
