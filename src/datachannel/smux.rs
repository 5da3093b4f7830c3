//! xtaci/smux protocol v1 (placeholder until implemented).
