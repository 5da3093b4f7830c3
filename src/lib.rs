//! ssmgate: a policy-enforcing SSH gateway to AWS Systems Manager Session
//! Manager. This crate is the gateway binary and library; the Session
//! Manager protocol is the `ssm_datachannel` crate (`crates/ssm-datachannel`)
//! and the simulator the `ssm_sim` crate (`crates/ssm-sim`), which the
//! gateway includes only with the default-on `demo` feature.
//!
//! At the bottom, [`request`]: the nouns every layer shares (who asks and
//! how they authenticated, the session kind and its policy action, SSM
//! documents, the session request); nothing below the SSH layer imports
//! [`ssh`] (`tests/layering.rs` checks it).
//!
//! Read the modules in the order data flows: [`ssh`] (the SSH server:
//! authentication, channels) → [`gateway`] (resolve → plan → authorise
//! with [`policy`] → start → carry → end) → [`inventory`] (targets) and
//! [`aws`] (the SSM API) → `ssm_datachannel` (the Session Manager
//! WebSocket protocol, client side) → AWS, or `ssm_sim`; for targets that
//! use it, [`sshd`] carries terminal sessions through the target's own
//! sshd (the gateway as SSH client; `sftp_audit` reads sftp). Beside them:
//! [`recording`] (session recording) and [`sessions`] (the `ssmgate
//! sessions` tools); [`config`], [`serve`] (with [`fd_limit`]), [`cli`], [`logging`],
//! [`signals`], [`keyfile`], [`ssh_signals`], [`private_files`],
//! [`untrusted`]; with the `demo` feature, `demo` and `bench`.

// `demo::stack` is compiled into the tests too, where this library is
// `ssmgate`: it names it so here as well.
extern crate self as ssmgate;

pub mod aws;
#[cfg(feature = "demo")]
pub mod bench;
pub mod cli;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod fd_limit;
pub mod gateway;
pub mod inventory;
pub mod keyfile;
pub mod logging;
pub mod ops;
pub mod policy;
pub mod private_files;
pub mod recording;
pub mod request;
pub mod serve;
pub mod sessions;
pub mod signals;
pub mod ssh;
pub mod ssh_signals;
pub mod sshd;
pub mod untrusted;
