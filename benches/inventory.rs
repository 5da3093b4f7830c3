//! `cargo bench --bench inventory`: what resolving targets and reading
//! their tags costs at 10,000 instances (9,600 EC2, 400 hybrid), against
//! the simulator through the real SDK clients: time and AWS API calls per
//! operation for the picker's full listing, a cold session open by id and
//! by name, a warm one, and a burst of 500 cold opens to different EC2
//! instances. The calls are counted by the simulator.
//!
//! Set SSMGATE_BENCH_INSTANCES to change the fleet size.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ssm_sim::server::SimServer;
use ssmgate::inventory::Inventory;

fn fleet_toml(n: usize) -> String {
    let mut t = String::from("mode = \"fast\"\n");
    for i in 0..n {
        let (id, hybrid) = if i % 25 == 24 {
            (format!("mi-{i:017x}"), true)
        } else {
            (format!("i-{i:017x}"), false)
        };
        t.push_str(&format!(
            "[[instances]]\nid = \"{id}\"\nname = \"node-{i}\"\ntags = {{ team = \"team{}\", env = \"{}\", hybrid = \"{hybrid}\" }}\n",
            i % 200,
            if i % 3 == 0 { "prod" } else { "dev" }
        ));
    }
    t
}

fn inventory(sim: &SimServer) -> Arc<Inventory> {
    Arc::new(Inventory::new(
        Arc::new(common::gateway_api(sim)),
        Duration::from_secs(300),
    ))
}

/// Calls per operation since `before`.
fn delta(sim: &SimServer, before: &BTreeMap<String, u64>) -> String {
    let now = sim.registry.api_call_counts();
    let parts: Vec<String> = now
        .iter()
        .filter_map(|(op, n)| {
            let d = n - before.get(op).copied().unwrap_or(0);
            (d > 0).then(|| format!("{op} {d}"))
        })
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

async fn row<F, Fut>(sim: &SimServer, what: &str, f: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let before = sim.registry.api_call_counts();
    let started = Instant::now();
    f().await;
    let took = started.elapsed();
    println!(
        "{what:<44} {:>9.1} ms   {}",
        took.as_secs_f64() * 1000.0,
        delta(sim, &before)
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("SSMGATE_BENCH_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let sim = common::sim(&fleet_toml(n)).await;
    println!("inventory: {n} instances (1 in 25 hybrid), simulator in this process\n");
    println!("{:<44} {:>12}   AWS calls", "operation", "time");

    let inv = inventory(&sim);
    let a = inv.clone();
    row(&sim, "picker listing, cold (all tags)", || async move {
        assert_eq!(a.list().await.unwrap().len(), n);
    })
    .await;
    let a = inv.clone();
    row(&sim, "picker listing, warm", || async move {
        a.list().await.unwrap();
    })
    .await;

    let cold = inventory(&sim);
    let a = cold.clone();
    row(
        &sim,
        "open by id, cold caches (first session)",
        || async move {
            a.resolve(&format!("i-{:017x}", 7)).await.unwrap();
        },
    )
    .await;
    let a = cold.clone();
    row(&sim, "open by id, listing warm, tags cold", || async move {
        a.resolve(&format!("i-{:017x}", 8)).await.unwrap();
    })
    .await;
    let a = cold.clone();
    row(&sim, "open by id, warm", || async move {
        a.resolve(&format!("i-{:017x}", 8)).await.unwrap();
    })
    .await;
    let a = cold.clone();
    row(&sim, "open by Name tag, listing warm", || async move {
        a.resolve("node-9").await.unwrap();
    })
    .await;
    let a = cold.clone();
    row(&sim, "open hybrid node by id, tags cold", || async move {
        a.resolve(&format!("mi-{:017x}", 24)).await.unwrap();
    })
    .await;

    let a = cold.clone();
    row(
        &sim,
        "500 cold opens at once (EC2, listing warm)",
        || async move {
            // EC2 instances not looked up yet.
            let opens: Vec<_> = (1000..)
                .filter(|i| i % 25 != 24)
                .take(500)
                .map(|i| {
                    let a = a.clone();
                    tokio::spawn(async move { a.resolve(&format!("i-{i:017x}")).await })
                })
                .collect();
            for o in opens {
                o.await.unwrap().unwrap();
            }
        },
    )
    .await;
    sim.shutdown().await.unwrap();
}
