//! The `ssmgate-sim` binary: the simulator on its own (the same as
//! `ssmgate sim`), for pointing any SSM client at with
//! `AWS_ENDPOINT_URL_SSM`.

use std::process::ExitCode;

use clap::Parser;
use ssm_sim::cli::SimArgs;
use tracing_subscriber::EnvFilter;

/// A local stand-in for AWS SSM: the SSM API and the Session Manager data
/// channel, backed by real shells, processes and TCP connections.
#[derive(Debug, Parser)]
#[command(name = "ssmgate-sim", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    args: SimArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `SSMGATE_LOG` (default `info`), as for `ssmgate`.
    let filter = EnvFilter::try_from_env("SSMGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    if let Err(e) = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init()
    {
        eprintln!("ssmgate-sim: cannot set up logging: {e}");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ssmgate-sim: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ssm_sim::cli::run(cli.args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ssmgate-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}
