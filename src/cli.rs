//! Command-line interface: the `ssmgate` subcommands and their flags.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::policy::Action;
use crate::sim::config::Mode;

/// A policy-enforcing SSH gateway to AWS Systems Manager Session Manager.
#[derive(Debug, Parser)]
#[command(name = "ssmgate", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the SSH gateway.
    Serve(ServeArgs),
    /// Start a simulator, a gateway and a demo user; print commands to try.
    Demo(DemoArgs),
    /// Create or upgrade the session database named by `[database] url`.
    Migrate(ServeArgs),
    /// Run a local stand-in for AWS SSM: the SSM API and the Session Manager
    /// data channel, backed by real shells, processes and TCP connections.
    Sim(SimArgs),
    /// Measure the data channel or the SSH gateway and print a table.
    Bench(BenchArgs),
    /// Check, test and explain the Cedar access policies.
    Policy(PolicyArgs),
}

/// `ssmgate serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The gateway's configuration file (see the README).
    #[arg(long, short, default_value = "ssmgate.toml")]
    pub config: PathBuf,
}

/// `ssmgate demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the demo's config and keys (default: a fresh one).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The gateway's SSH port.
    #[arg(long, default_value_t = 2222)]
    pub port: u16,
}

/// `ssmgate sim`.
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

/// `ssmgate bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum, default_value = "datachannel")]
    pub target: BenchTarget,
    /// MiB moved per throughput measurement (per scp for `ssh`).
    #[arg(long, default_value_t = 64)]
    pub mib: usize,
}

/// Benchmarks.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BenchTarget {
    /// Codec cost and port-session throughput against the simulator.
    Datachannel,
    /// Policy decision latency (1,000 policies, 10,000 targets) and picker listing time.
    Policy,
    /// Real OpenSSH through the gateway and the simulator vs a real sshd:
    /// scp throughput, session set-up time, keystroke echo latency.
    Ssh,
}

/// `ssmgate policy`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

/// `ssmgate policy …` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Parse the policies and validate them against the schema; exit 1 on
    /// any problem (each named by file, line and policy).
    Validate(PolicyDirArgs),
    /// Run a file of requests with expected decisions; print a table; exit
    /// 1 on any mismatch.
    Test(PolicyTestArgs),
    /// Decide one request (the target resolved through SSM) and explain the
    /// decision.
    Explain(PolicyExplainArgs),
}

/// Where the policies are.
#[derive(Debug, Args)]
pub struct PolicyDirArgs {
    /// The policy directory (default: the config's [policy] dir with
    /// --config, else ./policies).
    #[arg(long)]
    pub policies: Option<PathBuf>,
    /// A gateway config whose [policy] dir to use.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// `ssmgate policy test`.
#[derive(Debug, Args)]
pub struct PolicyTestArgs {
    /// The test file (TOML; see policies/tests.toml).
    pub file: PathBuf,
    #[command(flatten)]
    pub dir: PolicyDirArgs,
}

/// `ssmgate policy explain`.
#[derive(Debug, Args)]
pub struct PolicyExplainArgs {
    /// The gateway config (users, [aws], [policy]).
    #[arg(long, short, default_value = "ssmgate.toml")]
    pub config: PathBuf,
    /// Use this policy directory instead of the config's.
    #[arg(long)]
    pub policies: Option<PathBuf>,
    /// The user (a [[users]] name).
    #[arg(long)]
    pub user: String,
    /// The target: instance id or name, resolved through SSM.
    #[arg(long)]
    pub target: String,
    /// shell, exec, port_forward or ssh.
    #[arg(long, default_value = "shell", value_parser = parse_action)]
    pub action: Action,
    /// The reason for access.
    #[arg(long)]
    pub reason: Option<String>,
    /// The client's address.
    #[arg(long, default_value = "127.0.0.1")]
    pub source_ip: IpAddr,
    /// When (RFC 3339, e.g. 2026-11-03T22:00:00Z); default now.
    #[arg(long)]
    pub at: Option<String>,
    /// Port for port_forward.
    #[arg(long)]
    pub port: Option<u16>,
    /// Command line for exec.
    #[arg(long)]
    pub command: Option<String>,
    /// SSM document (default by action).
    #[arg(long)]
    pub document: Option<String>,
    /// Pretend the user authenticated with a certificate with this key id.
    #[arg(long)]
    pub key_id: Option<String>,
}

fn parse_action(s: &str) -> Result<Action, String> {
    s.parse()
}
