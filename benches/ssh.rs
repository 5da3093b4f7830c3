//! `cargo bench --bench ssh`: the SSH benchmark table
//! (real OpenSSH through ssmgate + sim vs sshd).

fn main() {
    let mib = std::env::var("SSMGATE_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start tokio: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(ssmgate::bench::ssh(mib)) {
        eprintln!("benchmark failed: {e:#}");
        std::process::exit(1);
    }
}
