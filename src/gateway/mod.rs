//! The one pipeline between an authenticated SSH request and an SSM
//! session: resolve the target → choose the document → compose the Reason →
//! StartSession → open the data channel → pipe → TerminateSession.
//!
//! The SSH layer builds a [`SessionRequest`](crate::request::SessionRequest)
//! and hands it over with its channel as byte streams or messages: a shell
//! or command runs through [`Gateway::run_terminal`] ([`run`]) from open to
//! recorded end; a forwarded connection through [`ports`]; the picker asks
//! [`Gateway::openable_targets`] ([`targets`]). It never calls AWS or the
//! policies itself, and nothing here knows SSH. Each session is recorded
//! through the [`crate::recording::SessionTap`] its [`Opened`] carries.

pub mod error;
pub mod pipe;
pub mod ports;
pub mod reason;
pub mod record;
pub mod run;
pub mod session;
pub mod targets;

pub use error::GatewayError;
pub use session::{Gateway, Opened};
