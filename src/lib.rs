//! ssmgate: a policy-enforcing SSH gateway to AWS Systems Manager Session
//! Manager.
//!
//! Read the modules in the order data flows: `datachannel` (the Session
//! Manager WebSocket protocol, client side) and `sim` (a local stand-in for
//! the SSM API and the service + agent end of the data channel).

pub mod aws;
pub mod bench;
pub mod cli;
pub mod clock;
pub mod config;
pub mod config_error;
pub mod datachannel;
pub mod demo;
pub mod gateway;
pub mod inventory;
pub mod logging;
pub mod policy;
pub mod private_files;
pub mod recording;
pub mod secret;
pub mod serve;
pub mod sessions;
pub mod signals;
pub mod sim;
pub mod ssh;
pub mod untrusted;
