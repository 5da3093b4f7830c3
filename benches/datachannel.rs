//! `cargo bench --bench datachannel`: the data-channel benchmark table
//! (codec cost, port-session throughput vs a raw TCP copy).

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
    if let Err(e) = runtime.block_on(ssmgate::bench::datachannel(mib)) {
        eprintln!("benchmark failed: {e:#}");
        std::process::exit(1);
    }
}
