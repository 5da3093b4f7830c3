//! The SSH front door: joins authenticated SSH channels to SSM sessions.

pub mod reason;
