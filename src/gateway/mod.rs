//! The one pipeline between an authenticated SSH request and an SSM
//! session: resolve the target → choose the document → compose the Reason →
//! StartSession → open the data channel → pipe → TerminateSession.
//!
//! The SSH layer builds a [`SessionRequest`] and gets an [`Opened`] session
//! back, then pipes bytes through [`pipe`] or [`ports`]; it never calls AWS
//! itself, and nothing here knows SSH. Each session is recorded through
//! the [`crate::recording::SessionTap`] its [`Opened`] carries.

pub mod error;
pub mod pipe;
pub mod ports;
pub mod reason;
pub mod record;
pub mod session;

pub use error::GatewayError;
pub use session::{Gateway, Opened};
