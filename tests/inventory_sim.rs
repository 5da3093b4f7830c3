//! Target resolution and the SSM API seam against an in-process simulator,
//! through the real aws-sdk-ssm client: `ssmgate::inventory::Inventory`
//! over `ssmgate::aws::Ssm`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "inventory_sim/api.rs"]
mod api;
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use ssm_datachannel::secret::Secret;
use ssm_sim::server::SimServer;
use ssmgate::aws::{InstanceInfo, Ssm, SsmApi, SsmError, StartRequest, StartedSession};
use ssmgate::inventory::{Inventory, ResolveError};

const WEB: &str = "i-0000000000000a001";
const API_A: &str = "i-0000000000000a002";
const API_B: &str = "i-0000000000000a003";
const BUILD: &str = "i-0000000000000a004";
const OFFLINE: &str = "i-0000000000000a005";
const EDGE: &str = "mi-0000000000000a006";
const MIXED: &str = "i-0000000000000a007";
const CACHE: &str = "i-0000000000000a008";

/// Eight instances: two share the Name tag `api`, one has only a computer
/// name, one is offline, one is a hybrid (`mi-`) instance.
const FLEET: &str = r#"
mode = "fast"

[[instances]]
id = "i-0000000000000a001"
name = "web-1"
computer_name = "web-1.internal"
tags = { env = "dev", role = "web" }

[[instances]]
id = "i-0000000000000a002"
name = "api"
tags = { env = "prod" }

[[instances]]
id = "i-0000000000000a003"
name = "api"
tags = { env = "dev" }

[[instances]]
id = "i-0000000000000a004"
computer_name = "build-box"

[[instances]]
id = "i-0000000000000a005"
name = "db-1"
ping_status = "ConnectionLost"

[[instances]]
id = "mi-0000000000000a006"
name = "edge-1"
computer_name = "edge-gw"
tags = { site = "lab" }

[[instances]]
id = "i-0000000000000a007"
name = "Mixed-Case"

[[instances]]
id = "i-0000000000000a008"
name = "cache-1"
ip_address = "10.0.0.8"
"#;

/// Counts the calls made through the real client.
struct Counting {
    inner: Ssm,
    describe: AtomicUsize,
    by_tag: AtomicUsize,
    tags: AtomicUsize,
}

impl Counting {
    fn new(inner: Ssm) -> Self {
        Counting {
            inner,
            describe: AtomicUsize::new(0),
            by_tag: AtomicUsize::new(0),
            tags: AtomicUsize::new(0),
        }
    }
    fn counts(&self) -> (usize, usize, usize) {
        (
            self.describe.load(Ordering::SeqCst),
            self.by_tag.load(Ordering::SeqCst),
            self.tags.load(Ordering::SeqCst),
        )
    }
}

#[async_trait::async_trait]
impl SsmApi for Counting {
    async fn start_session(&self, req: &StartRequest) -> Result<StartedSession, SsmError> {
        self.inner.start_session(req).await
    }
    async fn resume_session(&self, session_id: &str) -> Result<Option<Secret>, SsmError> {
        self.inner.resume_session(session_id).await
    }
    async fn terminate_session(&self, session_id: &str) -> Result<(), SsmError> {
        self.inner.terminate_session(session_id).await
    }
    async fn describe_instances(&self) -> Result<Vec<InstanceInfo>, SsmError> {
        self.describe.fetch_add(1, Ordering::SeqCst);
        self.inner.describe_instances().await
    }
    async fn describe_instances_by_tag(
        &self,
        key: &str,
        values: &[String],
    ) -> Result<Vec<InstanceInfo>, SsmError> {
        self.by_tag.fetch_add(1, Ordering::SeqCst);
        self.inner.describe_instances_by_tag(key, values).await
    }
    async fn list_tags(&self, instance_id: &str) -> Result<BTreeMap<String, String>, SsmError> {
        self.tags.fetch_add(1, Ordering::SeqCst);
        self.inner.list_tags(instance_id).await
    }
}

async fn fleet() -> (SimServer, Arc<Counting>, Inventory) {
    let sim = sim(FLEET).await;
    let api = Arc::new(Counting::new(Ssm::from_client(ssm(&sim).await)));
    let inventory = Inventory::new(api.clone(), Duration::from_secs(60));
    (sim, api, inventory)
}

#[tokio::test]
async fn resolves_by_id_name_tag_and_computer_name() {
    let (_sim, _api, inv) = fleet().await;

    let t = inv.resolve(WEB).await.unwrap();
    assert_eq!(t.id, WEB);
    assert_eq!(t.name.as_deref(), Some("web-1"));
    assert_eq!(t.computer_name.as_deref(), Some("web-1.internal"));
    assert_eq!(t.tags.get("env").map(String::as_str), Some("dev"));
    assert_eq!(t.tags.get("role").map(String::as_str), Some("web"));
    assert_eq!(t.tags.get("Name").map(String::as_str), Some("web-1"));
    assert!(t.is_online());
    assert_eq!(t.resource_type, "EC2Instance");
    assert_eq!(t.platform_type, "Linux");

    for spec in ["web-1", "WEB-1", "Web-1"] {
        assert_eq!(inv.resolve(spec).await.unwrap().id, WEB, "{spec}");
    }
    for spec in ["mixed-case", "MIXED-CASE", "Mixed-Case", "mIXED-cASE"] {
        assert_eq!(inv.resolve(spec).await.unwrap().id, MIXED, "{spec}");
    }
    assert_eq!(inv.resolve("web-1.internal").await.unwrap().id, WEB);

    let b = inv.resolve("BUILD-box").await.unwrap();
    assert_eq!(b.id, BUILD);
    assert_eq!(b.name, None);
    assert_eq!(b.display_name(), "build-box");

    let e = inv.resolve("Edge-1").await.unwrap();
    assert_eq!(e.id, EDGE);
    assert_eq!(e.resource_type, "ManagedInstance");
    assert_eq!(e.tags.get("site").map(String::as_str), Some("lab"));
    assert_eq!(inv.resolve("edge-gw").await.unwrap().id, EDGE);
    assert_eq!(
        inv.resolve(EDGE).await.unwrap().name.as_deref(),
        Some("edge-1")
    );
}

#[tokio::test]
async fn ambiguous_names_list_every_candidate() {
    let (_sim, _api, inv) = fleet().await;
    match inv.resolve("API").await {
        Err(ResolveError::Ambiguous { spec, candidates }) => {
            assert_eq!(spec, "API");
            assert_eq!(
                candidates,
                vec![
                    (API_A.to_owned(), "api".to_owned()),
                    (API_B.to_owned(), "api".to_owned())
                ]
            );
        }
        other => panic!("expected Ambiguous, got {other:?}"),
    }
    let text = inv.resolve("api").await.unwrap_err().to_string();
    assert_eq!(
        text,
        format!("api matches 2 instances: {API_A}(api), {API_B}(api); use the instance id")
    );
    // The ids still resolve, each to its own tags.
    assert_eq!(inv.resolve(API_A).await.unwrap().tags["env"], "prod");
    assert_eq!(inv.resolve(API_B).await.unwrap().tags["env"], "dev");
}

#[tokio::test]
async fn addresses_and_host_names_never_resolve() {
    let (_sim, _api, inv) = fleet().await;
    for spec in [
        "127.0.0.1",
        "169.254.169.254",
        "localhost",
        "example.com",
        "10.0.0.8",
        "i-0000000000000ffff",
        "i-0000000000000A001",
        "",
        "web-1\n",
        "web",
    ] {
        match inv.resolve(spec).await {
            Err(ResolveError::NotFound { .. }) => {}
            other => panic!("{spec:?} should not resolve: {other:?}"),
        }
    }
    let text = inv
        .resolve("169.254.169.254")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "169.254.169.254 is not an SSM managed instance (by id or name); ssmgate only connects to managed instances"
    );
}

#[tokio::test]
async fn offline_targets_resolve_but_are_not_online() {
    let (_sim, _api, inv) = fleet().await;
    let t = inv.resolve("db-1").await.unwrap();
    assert_eq!(t.id, OFFLINE);
    assert_eq!(t.ping_status, "ConnectionLost");
    assert!(!t.is_online());
    assert!(inv.resolve(OFFLINE).await.unwrap().last_ping.is_some());
}

#[tokio::test]
async fn list_returns_every_instance_with_tags() {
    let (_sim, _api, inv) = fleet().await;
    let all = inv.list().await.unwrap();
    let mut ids: Vec<&str> = all.iter().map(|t| t.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        vec![WEB, API_A, API_B, BUILD, OFFLINE, MIXED, CACHE, EDGE]
    );
    let by_id = |id: &str| all.iter().find(|t| t.id == id).unwrap();
    assert_eq!(by_id(WEB).tags["role"], "web");
    assert_eq!(by_id(EDGE).tags["site"], "lab");
    assert_eq!(by_id(CACHE).ip_address.as_deref(), Some("10.0.0.8"));
    assert!(by_id(BUILD).tags.is_empty());
    assert!(!by_id(OFFLINE).is_online());
    // Sorted for the picker by display name.
    let names: Vec<String> = all
        .iter()
        .map(|t| t.display_name().to_lowercase())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

#[tokio::test]
async fn listing_and_tags_are_cached_within_the_ttl() {
    let (_sim, api, inv) = fleet().await;
    inv.resolve(WEB).await.unwrap();
    assert_eq!(api.counts(), (1, 0, 1));
    inv.resolve(WEB).await.unwrap();
    assert_eq!(api.counts(), (1, 0, 1), "second resolve within TTL");
    // A name costs one tag-filtered call; the listing stays cached.
    inv.resolve("web-1").await.unwrap();
    assert_eq!(api.counts(), (1, 1, 1));
    // list() reuses the listing and fetches only the missing tags.
    inv.list().await.unwrap();
    assert_eq!(api.counts(), (1, 1, 8));
    inv.list().await.unwrap();
    assert_eq!(api.counts(), (1, 1, 8));
}

#[tokio::test]
async fn concurrent_callers_share_one_refresh_and_expiry_refreshes() {
    let sim = sim(FLEET).await;
    let api = Arc::new(Counting::new(Ssm::from_client(ssm(&sim).await)));
    let inv = Arc::new(Inventory::new(api.clone(), Duration::from_millis(300)));
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let inv = inv.clone();
            tokio::spawn(async move { inv.resolve(WEB).await.map(|t| t.id) })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap().unwrap(), WEB);
    }
    assert_eq!(
        api.counts(),
        (1, 0, 1),
        "one listing, one tag call for 20 callers"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    inv.resolve(WEB).await.unwrap();
    assert_eq!(api.counts(), (2, 0, 2), "refetched after the TTL");
}

#[tokio::test]
async fn an_unknown_id_refreshes_a_stale_listing_at_most_once_per_period() {
    let (_sim, api, inv) = fleet().await;
    inv.resolve(WEB).await.unwrap();
    // The listing is fresh (< 10 s): made-up ids cost nothing more.
    for _ in 0..5 {
        assert!(matches!(
            inv.resolve("i-0123456789abcdef0").await,
            Err(ResolveError::NotFound { .. })
        ));
    }
    assert_eq!(api.counts().0, 1);
}

#[tokio::test]
async fn pagination_reads_every_page() {
    let mut toml = String::from("mode = \"fast\"\n");
    for n in 0..120u32 {
        toml.push_str(&format!(
            "[[instances]]\nid = \"i-{n:017x}\"\nname = \"node-{n}\"\ntags = {{ n = \"{n}\" }}\n"
        ));
    }
    let sim = sim(&toml).await;
    let api = Arc::new(Counting::new(Ssm::from_client(ssm(&sim).await)));
    let inv = Inventory::new(api.clone(), Duration::from_secs(60));
    let started = std::time::Instant::now();
    let all = inv.list().await.unwrap();
    assert_eq!(all.len(), 120);
    assert!(
        all.iter()
            .all(|t| t.tags["n"] == t.name.as_deref().unwrap()[5..])
    );
    assert_eq!(api.counts(), (1, 0, 120));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        inv.resolve("NODE-77").await.unwrap().id,
        format!("i-{:017x}", 77)
    );
}
