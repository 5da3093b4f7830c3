//! Benchmarks behind `ssmgate bench …` and `cargo bench`: each prints a
//! table of figures measured side by side in one run, so that ratios can be
//! read even on a noisy shared machine.

pub mod datachannel;
pub mod policy;
pub mod scale;
pub mod ssh;
mod stats;

pub use datachannel::datachannel;
pub use scale::{ScaleOptions, scale};
pub use ssh::ssh;
