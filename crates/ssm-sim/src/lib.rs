//! `ssmgate sim`: a local stand-in for AWS Systems Manager — the SSM API
//! (AWS JSON 1.1) and the service + agent end of the data channel — so that
//! tests, the demo and benchmarks run with no AWS account.
//!
//! - [`api`]: the SSM API over HTTP, on [`registry`] of sessions, the
//!   [`inventory`] of instances and the session [`documents`];
//! - [`service`]: the data-channel WebSocket, handing sockets to the
//!   [`agent`] of each session, which runs real [`process`]es and TCP
//!   connections; [`faults`] perturb the sockets on request;
//! - [`server`]: one port for all of it; [`config`]: the TOML file.

pub mod agent;
pub mod api;
pub mod chunker;
pub mod client;
pub mod config;
pub mod documents;
pub mod faults;
pub mod inventory;
pub mod process;
pub mod registry;
pub mod server;
pub mod service;
