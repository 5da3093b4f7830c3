//! `ssmgate bench ssh` (also `cargo bench --bench ssh`): real OpenSSH
//! clients through the gateway and the simulator in fast mode, measured side
//! by side in one run with the same clients against a real `sshd` — directly
//! and through a plain TCP relay (the ceiling):
//! scp throughput (`scp -J` through ssmgate to web-1's sshd, `scp
//! alice+web-1@gateway` through its sshd backend, `-J` through an OpenSSH
//! bastion; with the CPU each spends per GiB in the gateway + simulator
//! process and in sshd), session set-up time (`ssh alice+web-0@gateway
//! 'echo x'`, SSM documents) and keystroke echo latency
//! (`ssh -tt` in a PTY vs a shell session opened straight on the data
//! channel). This module owns the measurements and the table; the sshd,
//! simulator and gateway come from the demo's [`Stack`] (keys by
//! `ssh-keygen`), the relay and client config from [`setup`]. Everything
//! lives in a temporary directory that is removed at the end, and every wait
//! is bounded.

mod echo;
mod setup;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::time::timeout;

use super::stats::{median, percentile};
use crate::demo::stack::current_user;
use crate::demo::stack::{Instance, Stack, User};
use setup::{TempDir, client_config_text, openssh_version, own_cpu, relay, run_bounded, tree_cpu};

/// web-1, the instance whose port 22 is the bench's sshd; its terminal
/// sessions go through that sshd (the sshd backend).
const WEB_1: &str = "i-0bbbbbbbbbbbbbb01";
/// web-0, an instance without sshd: sessions through SSM documents on the
/// simulator (the set-up and echo rows).
const WEB_0: &str = "i-0bbbbbbbbbbbbbb00";
/// `ssh … 'echo x'` runs per route for the set-up rows.
const SETUP_RUNS: usize = 30;
/// Keystrokes per echo row.
const KEYSTROKES: usize = 200;
/// Transfers per scp row (the median is reported).
const SCP_REPEATS: usize = 3;
/// Bound on one ssh set-up.
const SHORT: Duration = Duration::from_secs(20);
/// Added to sshd's config. `SetEnv SHLVL=1`: Debian's bash sources
/// ~/.bashrc when started by sshd unless it is a nested shell; an rc file
/// that runs tools (pyenv, conda, …) would otherwise add hundreds of ms to
/// every set-up, while the simulator runs commands with plain `sh -c`.
const SSHD_OPTIONS: &str = "UseDNS no\nPrintMotd no\nMaxStartups 100\nSetEnv SHLVL=1\n";

/// Runs the SSH benchmark, moving `mib` MiB per scp transfer, and prints a
/// table; stops everything it started before returning.
pub async fn ssh(mib: usize) -> Result<()> {
    let mib = mib.max(1);
    let bench = Bench::start().await?;
    let result = bench.run(mib).await;
    bench.stop().await;
    result
}

/// Everything the bench started.
struct Bench {
    /// Removed when the bench is dropped, after the stack stopped.
    dir: TempDir,
    /// The OpenSSH client config every `ssh`/`scp` gets with `-F` (a
    /// `ProxyJump` child only inherits `-F`, not `-o`).
    client_config: PathBuf,
    os_user: String,
    stack: Stack,
}

/// One direction of `scp -J` through ssmgate, for the targets.
struct ScpRow {
    dir: &'static str,
    rate: f64,
    of_relay: f64,
    of_bastion: f64,
    gateway_cpu: f64,
    bastion_cpu: f64,
}

/// Figures kept for the targets summary.
#[derive(Default)]
struct Summary {
    scp_gateway: Vec<ScpRow>,
    setup_gateway_p50: Option<Duration>,
    added_echo_p99: Option<f64>,
    direct_echo_p50: Option<f64>,
}

impl Bench {
    async fn start() -> Result<Bench> {
        let dir = TempDir::new()?;
        let os_user = current_user().await;
        let stack = Stack::builder(&dir.0)
            .key("user_key")
            .instance(Instance::new(WEB_0, "web-0"))
            .instance(Instance::new(WEB_1, "web-1"))
            .sshd(WEB_1, "user_key")
            .sshd_backend()
            .sshd_options(SSHD_OPTIONS)
            .host_key("gateway_host_key")
            .user(User::new("alice").key("user_key"))
            // Every request is decided by policy: the benchmark's user may
            // do anything (the decision itself is part of what is measured).
            .policy(
                "bench.cedar",
                "@id(\"bench-all\")\npermit (principal == User::\"alice\", action, resource);\n",
            )
            .start()
            .await?;
        let client_config = dir.0.join("ssh_config");
        std::fs::write(&client_config, client_config_text(&dir.0))?;
        Ok(Bench {
            dir,
            client_config,
            os_user,
            stack,
        })
    }

    async fn stop(self) {
        self.stack.stop().await;
    }

    async fn run(&self, mib: usize) -> Result<()> {
        println!(
            "ssmgate bench ssh ({mib} MiB per scp, median of {SCP_REPEATS}; {SETUP_RUNS} set-ups; {KEYSTROKES} keystrokes)"
        );
        println!(
            "client {}; simulator in fast mode\n",
            openssh_version().await
        );
        let mut summary = Summary::default();
        match &self.stack.sshd {
            Some(sshd) => self.scp_rows(mib, sshd.addr, &mut summary).await?,
            None => println!(
                "scp and direct-sshd rows skipped: no sshd found; install OpenSSH's server \
                 (Debian/Ubuntu: apt-get install openssh-server)\n"
            ),
        }
        self.setup_rows(&mut summary).await?;
        self.echo_rows(&mut summary).await?;
        print_targets(&summary);
        Ok(())
    }

    async fn scp_rows(&self, mib: usize, sshd: SocketAddr, summary: &mut Summary) -> Result<()> {
        let bytes = mib << 20;
        let payload = pseudo_random(bytes);
        let source = self.dir.0.join("payload.bin");
        std::fs::write(&source, &payload)?;
        let (relay_addr, relay_task) = relay(sshd).await?;
        let routes = [
            Route::Direct(sshd),
            Route::Relay(relay_addr),
            Route::Bastion(sshd),
            Route::Gateway,
            Route::GatewayStyle,
        ];
        let sshd_pid = self.stack.sshd.as_ref().and_then(|s| s.child.id());
        let mut rates = vec![[Vec::new(), Vec::new()]; routes.len()];
        // CPU s/GiB of this process (gateway + simulator + relay) and of
        // sshd with the sessions it forked (target, and bastion when -J).
        let mut own_cpu_gib = vec![[Vec::new(), Vec::new()]; routes.len()];
        let mut sshd_cpu_gib = vec![[Vec::new(), Vec::new()]; routes.len()];
        // Interleaved, so that noise from the shared machine hits every route.
        let measured = async {
            for _ in 0..SCP_REPEATS {
                for (i, route) in routes.iter().enumerate() {
                    for (j, up) in [true, false].into_iter().enumerate() {
                        let (own, tree) = (own_cpu(), sshd_pid.map(tree_cpu));
                        let rate = self.scp(*route, up, &source, &payload).await?;
                        let gib = payload.len() as f64 / f64::from(1u32 << 30);
                        let own = (own_cpu().saturating_sub(own)).as_secs_f64();
                        let sshd = sshd_pid
                            .map(tree_cpu)
                            .zip(tree)
                            .map_or(0.0, |(after, before)| {
                                after.saturating_sub(before).as_secs_f64()
                            });
                        for (table, value) in [
                            (&mut rates, rate),
                            (&mut own_cpu_gib, own / gib),
                            (&mut sshd_cpu_gib, sshd / gib),
                        ] {
                            if let Some(list) = table.get_mut(i).and_then(|r| r.get_mut(j)) {
                                list.push(value);
                            }
                        }
                    }
                }
            }
            anyhow::Ok(())
        }
        .await;
        relay_task.abort();
        let _ = std::fs::remove_file(&source);
        measured?;
        println!(
            "{:<52} {:>12} {:>9} {:>11} {:>11} {:>9}",
            "scp throughput (CPU: seconds per GiB moved)",
            "median",
            "vs relay",
            "vs bastion",
            "gw+sim CPU",
            "sshd CPU"
        );
        for (j, dir) in ["upload", "download"].into_iter().enumerate() {
            let median_in = |table: &Vec<[Vec<f64>; 2]>, i: usize| {
                table
                    .get(i)
                    .and_then(|r| r.get(j))
                    .map(|v| median(v))
                    .unwrap_or(0.0)
            };
            let ceiling = median_in(&rates, 1);
            let bastion = median_in(&rates, 2);
            for (i, route) in routes.iter().enumerate() {
                let rate = median_in(&rates, i);
                println!(
                    "{:<52} {rate:>7.1} MB/s {:>8.1}% {:>10.1}% {:>11.2} {:>9.2}",
                    format!("scp {dir}, {}", route.label()),
                    100.0 * rate / ceiling.max(1e-9),
                    100.0 * rate / bastion.max(1e-9),
                    median_in(&own_cpu_gib, i),
                    median_in(&sshd_cpu_gib, i)
                );
                if matches!(route, Route::Gateway) {
                    summary.scp_gateway.push(ScpRow {
                        dir,
                        rate,
                        of_relay: 100.0 * rate / ceiling.max(1e-9),
                        of_bastion: 100.0 * rate / bastion.max(1e-9),
                        // What forwarding costs: the process minus what
                        // the relay route alone cost it (a plain copy).
                        gateway_cpu: median_in(&own_cpu_gib, i) - median_in(&own_cpu_gib, 1),
                        // The bastion's sshd: sshd's CPU with -J minus
                        // sshd's CPU serving the same copy directly.
                        bastion_cpu: median_in(&sshd_cpu_gib, 2) - median_in(&sshd_cpu_gib, 0),
                    });
                }
            }
        }
        println!();
        Ok(())
    }

    /// One scp of `payload` (stored at `source`); MB/s, whole process timed.
    async fn scp(&self, route: Route, upload: bool, source: &Path, payload: &[u8]) -> Result<f64> {
        let copy = self.dir.0.join("copy.bin");
        let _ = std::fs::remove_file(&copy);
        let mut cmd = Command::new("scp");
        cmd.arg("-F").arg(&self.client_config).args(["-q", "-B"]);
        let host = match route {
            Route::Direct(a) | Route::Relay(a) => {
                cmd.args(["-P", &a.port().to_string()]);
                format!("{}@127.0.0.1", self.os_user)
            }
            Route::Bastion(a) => {
                cmd.args([
                    "-J",
                    &format!("{}@127.0.0.1:{}", self.os_user, a.port()),
                    "-P",
                    &a.port().to_string(),
                ]);
                // The same sshd as bastion and target: OpenSSH refuses a
                // jump to the very host:port it jumps through ("jumphost
                // loop"), so the target is named differently.
                format!("{}@localhost", self.os_user)
            }
            Route::GatewayStyle => {
                cmd.args(["-P", &self.stack.gateway.addr.port().to_string()]);
                "alice+web-1@127.0.0.1".to_owned()
            }
            Route::Gateway => {
                cmd.args([
                    "-J",
                    &format!("alice@127.0.0.1:{}", self.stack.gateway.addr.port()),
                ]);
                format!("{}@web-1", self.os_user)
            }
        };
        if upload {
            cmd.arg(source).arg(format!("{host}:{}", copy.display()));
        } else {
            cmd.arg(format!("{host}:{}", source.display())).arg(&copy);
        }
        // Even 1 MB/s finishes in time.
        let limit = Duration::from_secs(30 + (payload.len() >> 20) as u64);
        let start = Instant::now();
        run_bounded(cmd, limit)
            .await
            .with_context(|| format!("scp {}", route.label()))?;
        let took = start.elapsed();
        let copied = std::fs::read(&copy).context("reading the copy")?;
        if copied != payload {
            bail!(
                "scp {}: the copy differs from the original ({} of {} bytes)",
                route.label(),
                copied.len(),
                payload.len()
            );
        }
        let _ = std::fs::remove_file(&copy);
        Ok(payload.len() as f64 / 1e6 / took.as_secs_f64().max(1e-9))
    }

    async fn setup_rows(&self, summary: &mut Summary) -> Result<()> {
        let gateway_login = "alice+web-0@127.0.0.1".to_owned();
        let gw_port = self.stack.gateway.addr.port();
        let direct = self
            .stack
            .sshd
            .as_ref()
            .map(|s| (format!("{}@127.0.0.1", self.os_user), s.addr.port()));
        let mut via_gw = (Vec::new(), Vec::new());
        let mut via_sshd = (Vec::new(), Vec::new());
        for _ in 0..SETUP_RUNS {
            let (first, total) = self.setup_once(&gateway_login, gw_port).await?;
            via_gw.0.push(first);
            via_gw.1.push(total);
            if let Some((login, port)) = &direct {
                let (first, total) = self.setup_once(login, *port).await?;
                via_sshd.0.push(first);
                via_sshd.1.push(total);
            }
        }
        println!(
            "{:<52} {:>12} {:>10}",
            "session set-up (ssh … 'echo x')", "p50", "p99"
        );
        let rows = [
            ("ssmgate + sim exec, spawn → first stdout byte", &via_gw.0),
            ("ssmgate + sim exec, whole ssh run", &via_gw.1),
            ("sshd directly, spawn → first stdout byte", &via_sshd.0),
            ("sshd directly, whole ssh run", &via_sshd.1),
        ];
        for (name, samples) in rows {
            if !samples.is_empty() {
                print_ms_row(name, samples);
            }
        }
        summary.setup_gateway_p50 = Some(percentile(&via_gw.0, 0.5));
        println!();
        Ok(())
    }

    /// `ssh -T LOGIN -p PORT 'echo x'`: time to the first stdout byte and
    /// to exit, both from spawning ssh.
    async fn setup_once(&self, login: &str, port: u16) -> Result<(Duration, Duration)> {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F")
            .arg(&self.client_config)
            .args(["-T", "-p", &port.to_string(), login, "echo x"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let start = Instant::now();
        let mut child = cmd.spawn().context("starting ssh")?;
        let mut stdout = child.stdout.take().context("ssh has no stdout")?;
        let mut byte = [0u8; 1];
        let n = timeout(SHORT, stdout.read(&mut byte))
            .await
            .with_context(|| format!("ssh {login}: no output within {SHORT:?}"))??;
        let first = start.elapsed();
        let status = timeout(SHORT, child.wait())
            .await
            .with_context(|| format!("ssh {login}: did not exit within {SHORT:?}"))??;
        let total = start.elapsed();
        if n == 0 || !status.success() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = timeout(SHORT, e.read_to_string(&mut err)).await;
            }
            bail!("ssh {login} 'echo x' failed ({status}): {}", err.trim());
        }
        Ok((first, total))
    }

    async fn echo_rows(&self, summary: &mut Summary) -> Result<()> {
        let argv = vec![
            "ssh".to_owned(),
            "-F".to_owned(),
            self.client_config.display().to_string(),
            "-tt".to_owned(),
            "-p".to_owned(),
            self.stack.gateway.addr.port().to_string(),
            "alice+web-0@127.0.0.1".to_owned(),
        ];
        let (gateway, direct) =
            echo::measure(argv, &self.stack.sim.endpoint(), WEB_0, KEYSTROKES).await?;
        println!(
            "{:<52} {:>12} {:>10}",
            "keystroke echo latency", "p50", "p99"
        );
        print_ms_row("ssh -tt alice+web-0@ssmgate (PTY → PTY)", &gateway);
        print_ms_row("shell on the data channel, straight to the sim", &direct);
        let added = |p: f64| ms(percentile(&gateway, p)) - ms(percentile(&direct, p));
        println!(
            "{:<52} {:>9.3} ms {:>7.3} ms",
            "added by ssh + ssmgate (gateway − direct)",
            added(0.5),
            added(0.99)
        );
        summary.added_echo_p99 = Some(added(0.99));
        summary.direct_echo_p50 = Some(ms(percentile(&direct, 0.5)));
        println!();
        Ok(())
    }
}

/// Where an scp goes.
#[derive(Debug, Clone, Copy)]
enum Route {
    /// Straight to sshd.
    Direct(SocketAddr),
    /// Through the plain TCP relay in front of sshd.
    Relay(SocketAddr),
    /// `-J` through an OpenSSH bastion (the same sshd) to sshd.
    Bastion(SocketAddr),
    /// `-J` through ssmgate, an SSM port session on the sim, to sshd.
    Gateway,
    /// `alice+web-1@ssmgate`: the gateway's sshd backend (two SSH legs).
    GatewayStyle,
}

impl Route {
    fn label(&self) -> &'static str {
        match self {
            Route::Direct(_) => "directly to sshd",
            Route::Relay(_) => "through a plain TCP relay (ceiling)",
            Route::Bastion(_) => "scp -J through an OpenSSH bastion",
            Route::Gateway => "scp -J through ssmgate + sim",
            Route::GatewayStyle => "scp user+web-1@ssmgate (sshd backend)",
        }
    }
}

fn print_targets(s: &Summary) {
    println!("targets (measured on this machine)");
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    for r in &s.scp_gateway {
        println!(
            "  scp {} through ssmgate ≥ 20 MB/s and ≥ 50 % of the relay: {:.1} MB/s, {:.1} % → {}",
            r.dir,
            r.rate,
            r.of_relay,
            verdict(r.rate >= 20.0 && r.of_relay >= 50.0)
        );
        println!(
            "  scp {} -J through ssmgate ≥ 85 % of the OpenSSH bastion: {:.1} % → {}",
            r.dir,
            r.of_bastion,
            verdict(r.of_bastion >= 85.0)
        );
        println!(
            "    CPU per GiB moved: ssmgate + simulator {:.2} s (this process beyond the relay row; \
             the simulator's half is included), the bastion's sshd {:.2} s (sshd with -J beyond sshd directly)",
            r.gateway_cpu, r.bastion_cpu
        );
    }
    if let Some(p50) = s.setup_gateway_p50 {
        println!(
            "  set-up through ssmgate < 100 ms p50 (first byte): {:.1} ms → {}",
            ms(p50),
            verdict(ms(p50) < 100.0)
        );
    }
    if let Some(p99) = s.added_echo_p99 {
        println!(
            "  added echo latency < 1 ms p99: {p99:.3} ms → {}",
            verdict(p99 < 1.0)
        );
    }
    if let Some(p50) = s.direct_echo_p50.filter(|p| *p > 5.0) {
        println!(
            "  note: the direct path alone takes {p50:.1} ms per echo (the simulator's side), \
             so the added latency is within its noise"
        );
    }
}

fn print_ms_row(name: &str, samples: &[Duration]) {
    println!(
        "{name:<52} {:>9.3} ms {:>7.3} ms",
        ms(percentile(samples, 0.5)),
        ms(percentile(samples, 0.99))
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Incompressible bytes (xorshift), so no layer gains from compression.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_has_the_length_asked_and_does_not_repeat_early() {
        let p = pseudo_random(1_000_003);
        assert_eq!(p.len(), 1_000_003);
        assert_ne!(p.get(..4096), p.get(4096..8192));
    }
}
