//! The simulator's command line: `ssmgate-sim [flags]`, the same flags as
//! `ssmgate sim` (which the gateway binary offers with its `demo` feature).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::config::{Mode, SimConfig};
use crate::server::SimServer;
use crate::signals::Stop;

/// `ssmgate sim` / `ssmgate-sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to serve the SSM API and the data channel on.
    #[arg(long, default_value = "127.0.0.1:4080")]
    pub listen: SocketAddr,
    /// Inventory and fault configuration (TOML; see the README).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// `faithful` paces output like the real agent; `fast` does not.
    #[arg(long)]
    pub mode: Option<Mode>,
    #[command(flatten)]
    pub faults: FaultArgs,
}

/// Fault injection flags; each overrides the config file.
#[derive(Debug, Args, Default)]
pub struct FaultArgs {
    /// Share of data-channel frames to drop (0 to 1).
    #[arg(long)]
    pub drop_rate: Option<f64>,
    /// Share of frames to send twice.
    #[arg(long)]
    pub duplicate_rate: Option<f64>,
    /// Share of frames to hold back behind the next one.
    #[arg(long)]
    pub reorder_rate: Option<f64>,
    /// Share of frames to delay by --delay-ms.
    #[arg(long)]
    pub delay_rate: Option<f64>,
    /// Delay for --delay-rate, in milliseconds.
    #[arg(long)]
    pub delay_ms: Option<u64>,
    /// Cut each session's first WebSocket after this many frames.
    #[arg(long)]
    pub close_after: Option<u64>,
    /// Answer every ResumeSession with an error.
    #[arg(long)]
    pub refuse_resume: bool,
    /// Seed for the fault dice (repeatable runs).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Runs the simulator until SIGINT, SIGTERM or SIGQUIT.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => SimConfig::load(path)?,
        None => SimConfig::default(),
    };
    if let Some(mode) = args.mode {
        config.mode = mode;
    }
    let f = &args.faults;
    let c = &mut config.faults;
    if let Some(v) = f.drop_rate {
        c.drop_rate = v;
    }
    if let Some(v) = f.duplicate_rate {
        c.duplicate_rate = v;
    }
    if let Some(v) = f.reorder_rate {
        c.reorder_rate = v;
    }
    if let Some(v) = f.delay_rate {
        c.delay_rate = v;
    }
    if let Some(v) = f.delay_ms {
        c.delay_ms = v;
    }
    if f.close_after.is_some() {
        c.close_after = f.close_after;
    }
    c.refuse_resume |= f.refuse_resume;
    if f.seed.is_some() {
        c.seed = f.seed;
    }
    config
        .faults
        .validate()
        .map_err(anyhow::Error::msg)
        .context("invalid fault flags")?;
    // Handlers go in before anything is printed, so a signal sent right
    // after the banner is never lost; handling SIGQUIT also gives the shells
    // we spawn its default action back.
    let stop = Stop::install()?;
    let sim = SimServer::start(args.listen, config).await?;
    say(&format!(
        "ssmgate sim: SSM API and data channel on {}\n  export AWS_ENDPOINT_URL_SSM={}",
        sim.endpoint(),
        sim.endpoint()
    ));
    stop.wait().await;
    eprintln!("ssmgate sim: stopping");
    sim.shutdown().await?;
    Ok(())
}

/// Prints a line for the operator; a closed stdout is no reason to die.
fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}
