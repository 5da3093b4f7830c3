//! The client side of the Session Manager data channel: the binary protocol
//! spoken over the WebSocket `StreamUrl` that SSM `StartSession` returns.
//!
//! Layers, bottom up:
//! - [`message`]: one binary frame ⇄ [`message::Message`] (byte-exact codec);
//! - [`payloads`]: the JSON and binary payloads inside messages;
//! - [`reliable`]: sequence numbers, selective acks, reordering and
//!   retransmission (shared by our client and the simulator's agent);
//! - [`transport`]: the WebSocket and its open frame;
//! - [`channel`]: an open channel — [`open`], [`DataChannel`], [`Events`];
//! - [`smux`]: xtaci/smux v1 multiplexing used by port-forwarding sessions.
//!
//! This module knows nothing of SSH; the gateway joins the two.

pub mod channel;
pub mod handshake;
pub mod io;
pub mod message;
pub mod payloads;
pub mod port;
pub mod reliable;
pub mod smux;
pub mod transport;
pub mod version;

pub use channel::{
    ChannelConfig, CloseReason, DataChannel, DataChannelError, Event, Events, ReconnectPolicy,
    Resumer, SessionInfo, SessionKind, open,
};

#[cfg(test)]
mod vectors;
