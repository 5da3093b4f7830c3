//! The SSH front door, in the order a connection meets it:
//! - [`server`]: the listener, limits on unauthenticated connections
//!   ([`limits`]), login grace time, maximum duration, shutdown;
//! - [`login`]: what a user types after `ssh` (`alice+web-1`);
//! - [`handler`]: russh callbacks; every decision is delegated to [`auth`]
//!   (keys, user certificates) and the reason rule (`request::Justification`);
//! - [`session_channel`]: one task per shell/exec channel, with the target
//!   [`picker`] and the [`reason_command`] (grants); [`forward`]: one task
//!   per direct-tcpip channel; both hold a slot of the [`session_limits`]
//!   (per connection, per user) and take their reason from [`reasons`];
//!   [`line`] reads a line typed on a client's terminal;
//! - [`context`]: shared state.
//!
//! Nothing here calls AWS: channels hand a `SessionRequest` to the gateway.

pub mod auth;
pub mod context;
pub mod forward;
pub mod handler;
pub mod limits;
pub mod line;
pub mod login;
pub mod picker;
pub mod reason_command;
pub mod reasons;
pub mod server;
pub mod session_channel;
pub mod session_limits;
