//! The one pipeline between an authenticated SSH request and an SSM
//! session: resolve the target → choose the document → compose the Reason →
//! StartSession → open the data channel → pipe → TerminateSession.
//!
//! The SSH layer builds a [`SessionRequest`](crate::request::SessionRequest)
//! and hands it over with its channel as byte streams or messages: a shell,
//! command or subsystem runs through [`Gateway::run_terminal`] ([`run`])
//! from open to recorded end, with the client side described in
//! [`terminal`] and the bytes moved by a [`Carrier`] ([`backend`]: SSM
//! documents here, the target's sshd in the `sshd` module), as [`plan`]
//! decides ([`exit_marker`] recovers `ssh -t cmd`'s status through SSM); a forwarded connection runs through [`Gateway::run_forward`]
//! ([`ports`]); the picker asks [`Gateway::openable_targets`]
//! ([`targets`]). It never calls AWS or the policies itself, and nothing
//! here knows the SSH server. Each session is recorded through the
//! [`crate::recording::SessionTap`] its [`Opened`] carries.

pub mod backend;
pub mod error;
pub mod exit_marker;
pub mod grants;
pub mod pipe;
pub mod plan;
pub mod ports;
pub mod reason;
pub mod record;
pub mod run;
pub mod session;
pub mod targets;
pub mod terminal;

pub use backend::{Carried, Carrier};
pub use error::GatewayError;
pub use session::{Gateway, Link, Opened};
