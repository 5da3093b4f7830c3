//! `ssm-sim`: a local stand-in for AWS Systems Manager — the SSM API
//! (AWS JSON 1.1) and the service + agent end of the data channel — so that
//! tests, the demo and benchmarks run with no AWS account. It owns the
//! simulator and its binary, `ssmgate-sim` (also `ssmgate sim` in a gateway
//! built with the `demo` feature); it speaks the protocol of
//! `ssm-datachannel` and knows nothing of the gateway.
//!
//! - [`api`]: the SSM API over HTTP (with the tagging API's GetResources
//!   and STS on the same endpoint), on [`registry`] of sessions, the
//!   [`inventory`] of instances, the session [`documents`], the callers'
//!   [`identity`] and the [`location`] (region, account) ARNs name;
//! - [`service`]: the data-channel WebSocket, handing sockets to the
//!   [`agent`] of each session, which runs real [`process`]es and TCP
//!   connections; [`faults`] perturb the sockets on request;
//! - [`server`]: one port for all of it; [`config`]: the TOML file;
//! - [`cli`]: the command line (`ssmgate-sim`, `ssmgate sim`), stopped by
//!   [`signals`]; [`client`]: an `aws-sdk-ssm` client aimed at a simulator;
//!   [`chunker`]: output cut the way the real agent cuts it.

pub mod agent;
pub mod api;
pub mod chunker;
pub mod cli;
pub mod client;
pub mod config;
pub mod documents;
pub mod faults;
pub mod identity;
pub mod inventory;
pub mod location;
pub mod process;
pub mod registry;
pub mod server;
pub mod service;
pub mod signals;
