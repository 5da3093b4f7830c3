//! `ssmgate sim`: a local stand-in for AWS Systems Manager — the SSM API
//! (AWS JSON 1.1) and the service + agent end of the data channel — so that
//! tests, the demo and benchmarks run with no AWS account.

pub mod api;
pub mod config;
pub mod documents;
pub mod inventory;
pub mod registry;
