//! The `ssmgate` binary: parses the command line and runs a subcommand.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use ssmgate::cli::{BenchTarget, Cli, Command, ServeArgs, SimArgs};
use ssmgate::sim::config::SimConfig;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("SSMGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ssmgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => run_serve(args).await,
            Command::Demo(args) => {
                ssmgate::demo::run(ssmgate::demo::DemoOptions {
                    dir: args.dir,
                    port: args.port,
                })
                .await
            }
            Command::Sim(args) => run_sim(args).await,
            Command::Bench(args) => match args.target {
                BenchTarget::Datachannel => ssmgate::bench::datachannel(args.mib).await,
                BenchTarget::Ssh => ssmgate::bench::ssh(args.mib).await,
            },
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ssmgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = ssmgate::config::Config::load(&args.config)?;
    let gateway = ssmgate::serve::start(&config).await?;
    println!(
        "ssmgate: listening on {} (host key {})",
        gateway.addr, gateway.host_key_fingerprint
    );
    let stop = ssmgate::signals::Stop::install()?;
    stop.wait().await;
    eprintln!("ssmgate: stopping");
    gateway.shutdown().await;
    Ok(())
}

async fn run_sim(args: SimArgs) -> anyhow::Result<()> {
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
    // Handling SIGQUIT here gives the shells we spawn its default action
    // back, even when we were started with it ignored.
    let mut quit = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::quit())?;
    let sim = ssmgate::sim::server::SimServer::start(args.listen, config).await?;
    println!(
        "ssmgate sim: SSM API and data channel on {}",
        sim.endpoint()
    );
    println!("  export AWS_ENDPOINT_URL_SSM={}", sim.endpoint());
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = quit.recv() => {}
    }
    eprintln!("ssmgate sim: stopping");
    sim.shutdown().await?;
    Ok(())
}
