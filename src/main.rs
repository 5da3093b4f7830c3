//! The `ssmgate` binary: parses the command line and runs a subcommand.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
#[cfg(feature = "demo")]
use ssmgate::cli::BenchTarget;
use ssmgate::cli::{CaArgs, CaCommand, Cli, Command, PolicyArgs, PolicyCommand, ServeArgs};

/// jemalloc with background purging: memory freed when sessions end goes
/// back to the OS within seconds (glibc's malloc kept it; see Cargo.toml).
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` and `migrate` log as their config's `[log]` says, once it is
    // loaded; the other subcommands in text.
    if !matches!(cli.command, Command::Serve(_) | Command::Migrate(_)) {
        // sqlx logs Postgres notices ("relation … already exists,
        // skipping") at info: noise for a command-line tool.
        install_logging(&ssmgate::config::LogConfig {
            level: "info,sqlx=warn".into(),
            ..ssmgate::config::LogConfig::default()
        });
    }
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
            Command::Migrate(args) => run_migrate(args).await,
            #[cfg(feature = "demo")]
            Command::Demo(args) => {
                ssmgate::demo::run(ssmgate::demo::DemoOptions {
                    dir: args.dir,
                    port: args.port,
                })
                .await
            }
            #[cfg(feature = "demo")]
            Command::Sim(args) => ssm_sim::cli::run(args).await,
            #[cfg(feature = "demo")]
            Command::Bench(args) => match args.target {
                BenchTarget::Datachannel => ssmgate::bench::datachannel(args.mib).await,
                BenchTarget::Policy => ssmgate::bench::policy::run(),
                BenchTarget::Ssh => ssmgate::bench::ssh(args.mib).await,
                BenchTarget::Scale => {
                    ssmgate::bench::scale(ssmgate::bench::ScaleOptions {
                        sessions: args.sessions,
                        kind: args.kind,
                        in_flight: args.in_flight,
                        idle_secs: args.idle_secs,
                        settle: !args.no_settle,
                        keep: args.keep,
                    })
                    .await
                }
            },
            Command::Policy(args) => run_policy(args).await,
            Command::Sessions(args) => Ok(ssmgate::sessions::run(args).await?),
            Command::Users(args) => Ok(ssmgate::sessions::users::run(args).await?),
            Command::Ca(args) => run_ca(args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ssmgate: {}", ssmgate::cli::error_report(&e));
            e.downcast_ref::<ssmgate::sessions::SessionsError>()
                .map_or(ExitCode::FAILURE, |e| ExitCode::from(e.exit_code()))
        }
    }
}

/// Installs the process's log output: `log`'s format, its level unless
/// `SSMGATE_LOG` or `RUST_LOG` says otherwise.
fn install_logging(log: &ssmgate::config::LogConfig) {
    let filter = ssmgate::logging::filter_or(&log.level);
    if let Err(e) = ssmgate::logging::install_as(log.format, filter, std::io::stderr) {
        eprintln!("ssmgate: cannot set up logging: {e}");
    }
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = ssmgate::config::Config::load(&args.config)?;
    install_logging(&config.log);
    let mut stop = ssmgate::signals::Stop::install()?;
    let mut gateway = ssmgate::serve::start(&config).await?;
    say(&format!(
        "ssmgate: listening on {} (host key {})",
        gateway.addr, gateway.host_key_fingerprint
    ));
    stop.wait().await;
    tracing::info!(
        drain_secs = config.server.drain.as_secs(),
        "stopping: draining (a second signal stops at once)"
    );
    gateway.drain(config.server.drain, stop.wait()).await;
    tracing::info!("stopping");
    gateway.shutdown().await;
    Ok(())
}

fn run_ca(args: CaArgs) -> anyhow::Result<()> {
    let config = ssmgate::config::Config::load(&args.config)?;
    let path = &config.sshd_backend.ca_key;
    match args.command {
        CaCommand::PublicKey => {
            let (ca, generated) = ssmgate::sshd::ca::UserCa::load_or_generate(path)
                .with_context(|| format!("[sshd_backend] ca_key {}", path.display()))?;
            if generated {
                say(&format!(
                    "ssmgate: generated a new user CA at {}",
                    path.display()
                ));
            }
            println!("{}", ca.public_key_line());
            Ok(())
        }
    }
}

async fn run_policy(args: PolicyArgs) -> anyhow::Result<()> {
    use ssmgate::policy::cli;
    match args.command {
        PolicyCommand::Validate(a) => {
            let dir = cli::policy_dir(a.policies.as_deref(), a.config.as_deref())?;
            print!("{}", cli::validate(&dir)?);
            Ok(())
        }
        PolicyCommand::Test(a) => {
            let dir = cli::policy_dir(a.dir.policies.as_deref(), a.dir.config.as_deref())?;
            let (table, passed) = cli::test(&a.file, &dir)?;
            print!("{table}");
            if passed {
                Ok(())
            } else {
                anyhow::bail!(
                    "{}: some cases did not get the expected decision",
                    a.file.display()
                )
            }
        }
        PolicyCommand::Explain(a) => {
            let a = *a;
            let reason_source = ssmgate::policy::asked_reason_source(
                a.reason_source.as_deref(),
                a.reason.as_deref(),
            )
            .map_err(anyhow::Error::msg)?;
            let text = cli::explain(&cli::ExplainOptions {
                config: a.config,
                policies: a.policies,
                user: a.user,
                target: a.target,
                action: a.action,
                reason: a.reason,
                source_ip: a.source_ip,
                at: a.at,
                port: a.port,
                command: a.command,
                subsystem: a.subsystem,
                backend: if a.backend == "sshd" { "sshd" } else { "ssm" },
                os_user: a.os_user,
                reason_source,
                document: a.document,
                key_id: a.key_id,
            })
            .await?;
            print!("{text}");
            Ok(())
        }
    }
}

async fn run_migrate(args: ServeArgs) -> anyhow::Result<()> {
    let config = ssmgate::config::Config::load(&args.config)?;
    install_logging(&config.log);
    let shown = ssmgate::recording::redact_url(&config.database.url);
    ssmgate::recording::connect(&config.database.url)
        .await
        .with_context(|| format!("database {shown}"))?;
    say(&format!("ssmgate: migrations applied to {shown}"));
    Ok(())
}

/// Prints a line for the operator; a closed stdout is no reason to die.
fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}
