//! `ssm-datachannel`: the AWS Systems Manager Session Manager data channel,
//! client side — the binary protocol spoken over the WebSocket `StreamUrl`
//! that SSM `StartSession` returns. It owns the protocol and nothing else:
//! no SSH, no AWS API calls, no policy; the `ssmgate` gateway joins it to
//! SSH, and the `ssm-sim` simulator plays the other end with the same codec.
//!
//! Layers, bottom up:
//! - [`message`]: one binary frame ⇄ [`message::Message`] (byte-exact codec);
//! - [`payloads`]: the JSON and binary payloads inside messages;
//! - [`reliable`]: sequence numbers, selective acks, reordering and
//!   retransmission (shared by our client and the simulator's agent);
//! - [`transport`]: the WebSocket and its open frame;
//! - [`handshake`] and [`version`]: the session's opening exchange and the
//!   agent versions it depends on;
//! - [`channel`]: an open channel — [`open`], [`DataChannel`], [`Events`];
//! - [`port`] and [`smux`]: port sessions — [`PortSession`] opens
//!   connections whatever mode the agent speaks (stream, basic, or the
//!   xtaci/smux v1 multiplexing of `mux` mode);
//! - [`io`]: byte-stream adapters over a channel;
//! - [`secret`]: [`Secret`], the session token that never prints.

pub mod channel;
pub mod handshake;
pub mod io;
pub mod message;
pub mod payloads;
pub mod port;
pub mod read_size;
pub mod reliable;
pub mod secret;
pub mod session_type;
pub mod smux;
pub mod transport;
pub mod version;

pub use channel::{
    ChannelConfig, CloseReason, DataChannel, DataChannelError, Event, Events, ReconnectPolicy,
    ResumeError, Resumer, SessionInfo, SessionKind, open,
};
pub use port::{PortError, PortMode, PortSession, PortStream};
pub use secret::Secret;
pub use session_type::SessionType;

#[cfg(test)]
mod vectors;
