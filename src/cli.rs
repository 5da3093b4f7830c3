//! Command-line interface: the `ssmgate` subcommands and their flags.
//! `demo`, `sim` and `bench` exist only with the `demo` feature (on by
//! default); `sim`'s flags are the simulator's own (`ssm_sim::cli`).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
#[cfg(feature = "demo")]
pub use ssm_sim::cli::{FaultArgs, SimArgs};

use crate::policy::Action;

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
    #[cfg(feature = "demo")]
    Demo(DemoArgs),
    /// Create or upgrade the session database named by `[database] url`.
    Migrate(ServeArgs),
    /// Run a local stand-in for AWS SSM: the SSM API and the Session Manager
    /// data channel, backed by real shells, processes and TCP connections.
    #[cfg(feature = "demo")]
    Sim(SimArgs),
    /// Measure the data channel or the SSH gateway and print a table.
    #[cfg(feature = "demo")]
    Bench(BenchArgs),
    /// Check, test and explain the Cedar access policies.
    Policy(PolicyArgs),
    /// Inspect, replay, export and verify recorded sessions; list the live
    /// ones across replicas and end one.
    Sessions(SessionsArgs),
    /// Lock a user out (refuse new sessions, end the live ones) or unlock.
    Users(UsersArgs),
    /// The user CA of the sshd backend, which targets' sshd must trust.
    Ca(CaArgs),
}

/// `ssmgate ca`.
#[derive(Debug, Args)]
pub struct CaArgs {
    /// The gateway's configuration file (`[sshd_backend] ca_key`).
    #[arg(long, short, global = true, default_value = "ssmgate.toml")]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: CaCommand,
}

/// `ssmgate ca …` subcommands.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Print the CA's public key (for sshd's TrustedUserCAKeys; see
    /// deploy/ssm-documents/ssmgate-trust-ca.json), creating the CA on
    /// first use.
    PublicKey,
}

/// `ssmgate serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The gateway's configuration file (see the README).
    #[arg(long, short, default_value = "ssmgate.toml")]
    pub config: PathBuf,
}

/// `ssmgate demo`.
#[cfg(feature = "demo")]
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the demo's config and keys (default: a fresh one).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The gateway's SSH port.
    #[arg(long, default_value_t = 2222)]
    pub port: u16,
}

/// `ssmgate bench`.
#[cfg(feature = "demo")]
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum, default_value = "datachannel")]
    pub target: BenchTarget,
    /// MiB moved per throughput measurement (per scp for `ssh`).
    #[arg(long, default_value_t = 64)]
    pub mib: usize,
    /// Sessions to open and hold, one SSH connection each.
    #[arg(long, default_value_t = 1000, help_heading = "bench scale")]
    pub sessions: usize,
    /// What each session is: a forward to an echo server on the instance,
    /// a shell without a terminal, or a long-running command (`cat`).
    #[arg(long, value_enum, default_value = "port", help_heading = "bench scale")]
    pub kind: ScaleKind,
    /// Sessions being opened at once during the ramp.
    #[arg(long, default_value_t = 32, help_heading = "bench scale")]
    pub in_flight: usize,
    /// Seconds over which idle CPU is measured (with none and with N open).
    #[arg(long, default_value_t = 10, help_heading = "bench scale")]
    pub idle_secs: u64,
    /// Skip reading the gateway's memory again 60 s after the close.
    #[arg(long, help_heading = "bench scale")]
    pub no_settle: bool,
    /// Keep the temporary directory (configs, logs, database) and print its path.
    #[arg(long, help_heading = "bench scale")]
    pub keep: bool,
}

/// Benchmarks.
#[cfg(feature = "demo")]
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BenchTarget {
    /// Codec cost and port-session throughput against the simulator.
    Datachannel,
    /// Policy decision latency (1,000 policies, 10,000 targets) and picker listing time.
    Policy,
    /// Real OpenSSH through the gateway and the simulator vs a real sshd:
    /// scp throughput, session set-up time, keystroke echo latency.
    Ssh,
    /// N idle sessions through a gateway and a simulator in processes of
    /// their own: memory and CPU per session, open latency with N open,
    /// echoes, the close drain, warnings in the logs.
    Scale,
}

/// What each session of `ssmgate bench scale` is.
#[cfg(feature = "demo")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScaleKind {
    /// A direct-tcpip forward to an echo server (port forwarding).
    Port,
    /// A shell without a terminal.
    Shell,
    /// A long-running command (`cat`).
    Exec,
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
    Explain(Box<PolicyExplainArgs>),
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
    /// Where the reason came from: prompt, env, grant or none (default:
    /// prompt with --reason, else none).
    #[arg(long, value_parser = crate::policy::REASON_SOURCES)]
    pub reason_source: Option<String>,
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
    /// Subsystem for exec (e.g. sftp).
    #[arg(long)]
    pub subsystem: Option<String>,
    /// What carries the session: ssm (SSM documents) or sshd (the target's sshd).
    #[arg(long, default_value = "ssm", value_parser = ["ssm", "sshd"])]
    pub backend: String,
    /// The OS user the session logs in as (sshd backend).
    #[arg(long)]
    pub os_user: Option<String>,
    /// Pretend the user authenticated with a certificate with this key id.
    #[arg(long)]
    pub key_id: Option<String>,
}

fn parse_action(s: &str) -> Result<Action, String> {
    s.parse()
}

/// `ssmgate sessions`.
#[derive(Debug, Args)]
pub struct SessionsArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[command(subcommand)]
    pub command: SessionsCommand,
}

/// Where `sessions` and `users` find the session database.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// The gateway's configuration file, whose `[database] url` is read.
    #[arg(long, short, global = true, default_value = "ssmgate.toml")]
    pub config: PathBuf,
    /// The session database URL (wins over --config).
    #[arg(
        long,
        global = true,
        env = "SSMGATE_DATABASE_URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
}

/// `ssmgate sessions …` subcommands.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List sessions, newest first.
    List(SessionsListArgs),
    /// Print every recorded detail of a session and its audit trail.
    Show(SessionIdArgs),
    /// Play a shell or command session's output back with its timing.
    Replay(SessionsReplayArgs),
    /// Export a session's terminal recording (asciicast v2, for `asciinema play`).
    Export(SessionsExportArgs),
    /// Check a session's chain and seals (or every session's and the audit
    /// trail's); exit 1 if anything was tampered with, 3 if the key file is
    /// missing or lacks a key that sealed something.
    Verify(SessionsVerifyArgs),
    /// End a live session, on whichever replica runs it (audited with who
    /// asked and why); exit 1 if it was not ended in time.
    Kill(SessionsKillArgs),
}

/// `ssmgate sessions kill`.
#[derive(Debug, Args)]
pub struct SessionsKillArgs {
    /// The session id, or a unique prefix of it (at least 4 hex digits).
    pub id: String,
    /// Why (recorded with the end and shown to the user).
    #[arg(long, default_value = "ended by an administrator")]
    pub reason: String,
    /// Seconds to wait for the replica to end it.
    #[arg(long, default_value_t = 10)]
    pub wait: u64,
}

/// `ssmgate users`.
#[derive(Debug, Args)]
pub struct UsersArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    #[command(subcommand)]
    pub command: UsersCommand,
}

/// `ssmgate users …` subcommands.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Refuse NAME's new sessions on every replica and end the live ones,
    /// until `unlock`.
    Lock {
        /// The user (as in `[[users]] name`).
        name: String,
        /// Why (recorded, and shown to the user).
        #[arg(long, default_value = "locked by an administrator")]
        reason: String,
    },
    /// Let NAME start sessions again.
    Unlock {
        /// The user.
        name: String,
    },
    /// List locked users.
    Locked,
}

/// `ssmgate sessions list`.
#[derive(Debug, Args)]
pub struct SessionsListArgs {
    /// Only this user's sessions.
    #[arg(long)]
    pub user: Option<String>,
    /// Only sessions to this target (instance id or name).
    #[arg(long)]
    pub target: Option<String>,
    /// Only sessions started since WHEN: RFC 3339
    /// (2026-11-03T10:00:00Z), a date (2026-11-03, UTC) or a duration ago
    /// (90s, 30m, 2h, 7d, 2w).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only sessions that have not ended.
    #[arg(long)]
    pub live: bool,
    /// At most this many sessions (0: no limit).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// One JSON object per session and line, with every field.
    #[arg(long)]
    pub json: bool,
}

/// A session named on the command line.
#[derive(Debug, Args)]
pub struct SessionIdArgs {
    /// The session id, or a unique prefix of it (at least 4 hex digits).
    pub id: String,
}

/// `ssmgate sessions replay`.
#[derive(Debug, Args)]
pub struct SessionsReplayArgs {
    /// The session id, or a unique prefix of it (at least 4 hex digits).
    pub id: String,
    /// Playback speed (2 plays twice as fast).
    #[arg(long, default_value_t = 1.0, value_parser = positive_f64)]
    pub speed: f64,
    /// Longest pause, in seconds (after --speed is applied).
    #[arg(long, value_name = "SECS", default_value_t = 2.0, value_parser = non_negative_f64)]
    pub max_idle: f64,
}

/// `ssmgate sessions export`.
#[derive(Debug, Args)]
pub struct SessionsExportArgs {
    /// The session id, or a unique prefix of it (at least 4 hex digits).
    pub id: String,
    /// The file format.
    #[arg(long, value_enum, default_value = "asciicast")]
    pub format: ExportFormat,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// asciicast v2 (asciinema).
    Asciicast,
}

/// `ssmgate sessions verify`.
#[derive(Debug, Args)]
pub struct SessionsVerifyArgs {
    /// The session id, or a unique prefix of it (at least 4 hex digits).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub id: Option<String>,
    /// Verify every session and every audit chain, and print a summary.
    #[arg(long)]
    pub all: bool,
    /// The recording key file (default: the config's `[recording] key_file`).
    #[arg(long, value_name = "PATH", env = "SSMGATE_RECORDING_KEY_FILE")]
    pub key_file: Option<PathBuf>,
}

fn positive_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("expected a number greater than 0, got {s:?}")),
    }
}

fn non_negative_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "expected a number of seconds, 0 or more, got {s:?}"
        )),
    }
}

/// An error as one line for the command line: the message, then each
/// cause that adds something. Error types here often say their cause in
/// their own message as well as returning it as `source()`; a cause whose
/// text the line already holds is left out, so nothing shows twice.
pub fn error_report(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod report_tests {
    use super::error_report;

    #[derive(Debug, thiserror::Error)]
    #[error("spool is locked")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("recording: {0}")]
    struct Outer(#[from] Inner);

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let e = anyhow::Error::from(Outer(Inner)).context("starting the gateway");
        assert_eq!(
            error_report(&e),
            "starting the gateway: recording: spool is locked"
        );
        let io = std::io::Error::other("disk full");
        let e = anyhow::Error::from(io).context("writing the spool");
        assert_eq!(error_report(&e), "writing the spool: disk full");
    }
}
