//! Target resolution and the SSM API seam against an in-process simulator,
//! through the real aws-sdk-ssm client: `ssmgate::inventory::Inventory`
//! over `ssmgate::aws::Ssm`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "inventory_sim/api.rs"]
mod api;
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use ssm_datachannel::secret::Secret;
use ssm_sim::server::SimServer;
use ssmgate::aws::{InstanceInfo, Ssm, SsmApi, SsmError, StartRequest, StartedSession, TagMap};
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
    hybrid_tags: AtomicUsize,
    ec2_tags: AtomicUsize,
}

impl Counting {
    fn new(inner: Ssm) -> Self {
        Counting {
            inner,
            describe: AtomicUsize::new(0),
            by_tag: AtomicUsize::new(0),
            hybrid_tags: AtomicUsize::new(0),
            ec2_tags: AtomicUsize::new(0),
        }
    }
    /// (listings, Name-tag lookups, hybrid tag calls, EC2 tag calls).
    fn counts(&self) -> (usize, usize, usize, usize) {
        (
            self.describe.load(Ordering::SeqCst),
            self.by_tag.load(Ordering::SeqCst),
            self.hybrid_tags.load(Ordering::SeqCst),
            self.ec2_tags.load(Ordering::SeqCst),
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
    async fn managed_instance_tags(&self, id: &str) -> Result<TagMap, SsmError> {
        self.hybrid_tags.fetch_add(1, Ordering::SeqCst);
        self.inner.managed_instance_tags(id).await
    }
    async fn ec2_instance_tags(&self, ids: &[String]) -> Result<HashMap<String, TagMap>, SsmError> {
        assert!(ids.len() <= 100, "at most 100 ARNs per call");
        self.ec2_tags.fetch_add(1, Ordering::SeqCst);
        self.inner.ec2_instance_tags(ids).await
    }
}

async fn fleet() -> (SimServer, Arc<Counting>, Inventory) {
    let sim = sim(FLEET).await;
    let api = Arc::new(Counting::new(gateway_api(&sim)));
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
    assert_eq!(api.counts(), (1, 0, 0, 1));
    inv.resolve(WEB).await.unwrap();
    assert_eq!(api.counts(), (1, 0, 0, 1), "second resolve within TTL");
    // A name costs one tag-filtered call; the listing stays cached.
    inv.resolve("web-1").await.unwrap();
    assert_eq!(api.counts(), (1, 1, 0, 1));
    // list() reuses the listing and fetches only the missing tags: the
    // six other EC2 instances in one call, the hybrid node in another.
    inv.list().await.unwrap();
    assert_eq!(api.counts(), (1, 1, 1, 2));
    inv.list().await.unwrap();
    assert_eq!(api.counts(), (1, 1, 1, 2));
}

#[tokio::test]
async fn concurrent_callers_share_one_refresh_and_expiry_refreshes() {
    let sim = sim(FLEET).await;
    let api = Arc::new(Counting::new(gateway_api(&sim)));
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
        (1, 0, 0, 1),
        "one listing, one tag call for 20 callers"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    inv.resolve(WEB).await.unwrap();
    assert_eq!(api.counts(), (2, 0, 0, 2), "refetched after the TTL");
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
    let api = Arc::new(Counting::new(gateway_api(&sim)));
    let inv = Inventory::new(api.clone(), Duration::from_secs(60));
    let started = std::time::Instant::now();
    let all = inv.list().await.unwrap();
    assert_eq!(all.len(), 120);
    assert!(
        all.iter()
            .all(|t| t.tags["n"] == t.name.as_deref().unwrap()[5..])
    );
    assert_eq!(
        api.counts(),
        (1, 0, 0, 2),
        "120 instances: two calls of at most 100"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        inv.resolve("NODE-77").await.unwrap().id,
        format!("i-{:017x}", 77)
    );
}

#[tokio::test]
async fn ec2_tags_come_from_the_tagging_api_and_hybrid_tags_from_ssm() {
    let (sim, _api, inv) = fleet().await;
    let calls = |op: &str| sim.registry.api_calls(op);
    let web = inv.resolve(WEB).await.unwrap();
    assert_eq!(web.tags["role"], "web");
    assert_eq!(
        (calls("GetResources"), calls("ListTagsForResource")),
        (1, 0)
    );
    assert_eq!(calls("GetCallerIdentity"), 1, "the account, for the ARNs");
    let edge = inv.resolve(EDGE).await.unwrap();
    assert_eq!(edge.tags["site"], "lab");
    assert_eq!(
        (calls("GetResources"), calls("ListTagsForResource")),
        (1, 1)
    );
    // An instance without tags is untagged, not an error.
    assert!(inv.resolve(BUILD).await.unwrap().tags.is_empty());
    assert_eq!(calls("GetCallerIdentity"), 1, "asked once");
}

#[tokio::test]
async fn a_burst_of_500_cold_lookups_costs_five_tag_calls() {
    let mut toml = String::from("mode = \"fast\"\n");
    for n in 0..500u32 {
        toml.push_str(&format!(
            "[[instances]]\nid = \"i-{n:017x}\"\ntags = {{ n = \"{n}\" }}\n"
        ));
    }
    let sim = sim(&toml).await;
    let inv = Arc::new(Inventory::new(
        Arc::new(gateway_api(&sim)),
        Duration::from_secs(60),
    ));
    inv.list().await.unwrap();
    let listed = sim.registry.api_calls("GetResources");
    assert_eq!(listed, 5, "500 instances listed: 5 calls of 100");
    // A fresh inventory (cold tag cache), 500 opens at once.
    let inv = Arc::new(Inventory::new(
        Arc::new(gateway_api(&sim)),
        Duration::from_secs(60),
    ));
    let opens: Vec<_> = (0..500u32)
        .map(|n| {
            let inv = inv.clone();
            tokio::spawn(async move { (n, inv.resolve(&format!("i-{n:017x}")).await) })
        })
        .collect();
    for open in opens {
        let (n, target) = open.await.unwrap();
        assert_eq!(target.unwrap().tags["n"], n.to_string());
    }
    // At most 100 ARNs per call: 5 when all 500 lookups join batches in
    // time; a slow machine may split one. Never more than the bucket's
    // burst (10), however the lookups arrive.
    let calls = sim.registry.api_calls("GetResources") - listed;
    assert!((5..=10).contains(&calls), "500 cold opens: {calls} calls");
}

#[tokio::test]
async fn tag_errors_fail_closed_and_are_not_cached() {
    let (sim, _api, inv) = fleet().await;
    let faults = sim.registry.api_faults();
    faults.fail("GetResources", "ThrottledException", "Rate exceeded", None);
    match inv.resolve(WEB).await {
        Err(ResolveError::Tags { id, source }) => {
            assert_eq!(id, WEB);
            assert_eq!(
                source,
                SsmError::Throttled {
                    service: ssmgate::aws::Service::Tagging
                }
            );
        }
        other => panic!("expected a tag error, got {other:?}"),
    }
    // Names resolve through the same tags: refused too, not "untagged".
    assert!(matches!(
        inv.resolve("web-1").await,
        Err(ResolveError::Tags { .. })
    ));
    assert!(matches!(inv.list().await, Err(ResolveError::Tags { .. })));
    faults.clear("GetResources");
    assert_eq!(inv.resolve(WEB).await.unwrap().tags["role"], "web");

    // The hybrid node's tags were read by list() above: a fresh inventory.
    let inv = Inventory::new(Arc::new(gateway_api(&sim)), Duration::from_secs(60));
    faults.fail(
        "ListTagsForResource",
        "InternalServerError",
        "boom",
        Some(1),
    );
    let err = inv.resolve(EDGE).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the tags of {EDGE} could not be read, so access to it cannot be decided: SSM error InternalServerError: boom"
        )
    );
    assert_eq!(inv.resolve(EDGE).await.unwrap().tags["site"], "lab");
}

#[tokio::test]
async fn an_unknown_account_fails_closed_until_sts_answers() {
    let (sim, _api, inv) = fleet().await;
    let faults = sim.registry.api_faults();
    faults.fail("GetCallerIdentity", "InternalFailure", "try later", Some(1));
    let err = inv.resolve(WEB).await.unwrap_err();
    assert!(
        err.to_string()
            .ends_with("STS error InternalFailure: try later"),
        "{err}"
    );
    assert_eq!(sim.registry.api_calls("GetResources"), 0);
    assert_eq!(inv.resolve(WEB).await.unwrap().tags["env"], "dev");
}

#[tokio::test]
async fn a_fleet_qualifies_names_and_refuses_ambiguity() {
    use ssmgate::inventory::{Fleet, Location, Member};
    let sim = sim(FLEET).await;
    // Two members over the same simulator: every instance is in both.
    let member = |account: &str, region: &str| {
        let api: Arc<dyn SsmApi> = Arc::new(gateway_api(&sim));
        Member {
            inventory: Inventory::new(api.clone(), Duration::from_secs(60)).in_location(Location {
                account: account.to_owned(),
                region: region.to_owned(),
            }),
            api,
            sessions: None,
        }
    };
    let fleet = Fleet::new(vec![member("a", "r1"), member("b", "r2")]);
    let t = fleet.resolve("a/web-1").await.unwrap();
    assert_eq!(
        (t.id.as_str(), t.account.as_str(), t.region.as_str()),
        (WEB, "a", "r1")
    );
    let t = fleet.resolve("b/r2/web-1").await.unwrap();
    assert_eq!((t.account.as_str(), t.region.as_str()), ("b", "r2"));
    assert_eq!(fleet.member_of(&t).unwrap().location().account, "b");
    match fleet.resolve("web-1").await {
        Err(ResolveError::Ambiguous { spec, candidates }) => {
            assert_eq!(spec, "web-1");
            assert_eq!(
                candidates,
                vec![
                    (format!("a/r1/{WEB}"), "web-1".to_owned()),
                    (format!("b/r2/{WEB}"), "web-1".to_owned()),
                ]
            );
        }
        other => panic!("expected ambiguity, got {other:?}"),
    }
    // A name ambiguous within one member stays ambiguous, qualified.
    match fleet.resolve("a/api").await {
        Err(ResolveError::Ambiguous { spec, candidates }) => {
            assert_eq!(spec, "a/api");
            assert_eq!(candidates.len(), 2);
        }
        other => panic!("expected ambiguity, got {other:?}"),
    }
    let err = fleet.resolve("c/web-1").await.unwrap_err();
    assert!(
        matches!(err, ResolveError::UnknownLocation { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("one of a/r1, b/r2"), "{err}");
    assert!(matches!(
        fleet.resolve("a/r2/web-1").await,
        Err(ResolveError::UnknownLocation { .. })
    ));
    assert!(matches!(
        fleet.resolve("a/nosuch").await,
        Err(ResolveError::NotFound { spec }) if spec == "a/nosuch"
    ));
    // The picker's listing holds both members' instances.
    assert_eq!(fleet.list().await.unwrap().len(), 16);
}
