//! End to end with `[[aws.accounts]]`: one simulator hosting two accounts
//! (the gateway's own, and `prod`, reached by assuming a role in it) and
//! two regions; same-named targets in both. Qualified names reach the
//! right one, in the right account and region, under the right identity;
//! an unqualified name is refused as ambiguous, listing the candidates;
//! policies see `resource.account` and `resource.region`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::gateway::{Fixture, Options, show};
use ssm_sim::registry::SessionEntry;

const SECS: u64 = 30;
const HOME_TWIN: &str = "i-0e00000000000c001";
const PROD_TWIN: &str = "i-0e00000000000c002";
const PROD_EAST: &str = "i-0e00000000000c003";
const PROD_ACCOUNT: &str = "222222222222";

const SIM: &str = r#"
[[accounts]]
id = "222222222222"

[[instances]]
id = "i-0e00000000000c001"
name = "twin-host"

[[instances]]
id = "i-0e00000000000c002"
name = "twin-host"
account = "222222222222"
region = "eu-west-1"

[[instances]]
id = "i-0e00000000000c003"
name = "east-host"
account = "222222222222"
region = "us-east-1"
"#;

const ACCOUNTS: &str = r#"
[[aws.accounts]]
name = "home"

[[aws.accounts]]
name = "prod"
role_arn = "arn:aws:iam::222222222222:role/ssmgate"
regions = ["us-east-1", "eu-west-1"]
"#;

const POLICY: &str = r#"
@id("prod-east-no-exec")
@message("no commands in prod's us-east-1")
forbid (principal, action == Action::"exec", resource)
when { resource.account == "prod" && resource.region == "us-east-1" };
"#;

/// The sim's sessions on `target`, once there is one.
async fn session_on(fx: &Fixture, target: &str) -> SessionEntry {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut all = fx.sim.registry.describe(true);
        all.extend(fx.sim.registry.describe(false));
        if let Some(s) = all.into_iter().find(|s| s.target == target) {
            return s;
        }
        assert!(Instant::now() < deadline, "no session on {target}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qualified_names_reach_the_right_account_and_region() {
    let fx = Fixture::start_opts(Options {
        sim: SIM.to_owned(),
        aws: ACCOUNTS.to_owned(),
        policies: POLICY.to_owned(),
        ..Options::default()
    })
    .await;

    // Same name in two accounts: refused, with both candidates qualified.
    let out = fx.echo_on("twin-host", SECS).await;
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "twin-host matches 2 instances",
        &format!("home/us-east-1/{HOME_TWIN}(twin-host)"),
        &format!("prod/eu-west-1/{PROD_TWIN}(twin-host)"),
    ] {
        assert!(err.contains(needle), "lacks {needle:?}: {}", show(&out));
    }

    // prod/twin-host: the eu-west-1 one, under the prod role assumed for
    // alice.
    let out = fx.echo_on("prod/twin-host", SECS).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    let s = session_on(&fx, PROD_TWIN).await;
    assert_eq!(s.caller.account, PROD_ACCOUNT);
    assert_eq!(
        s.owner,
        "arn:aws:sts::222222222222:assumed-role/ssmgate/alice"
    );
    assert_eq!(s.caller.source_identity(), Some("alice"));

    // home/us-east-1/twin-host: the gateway's own account and identity.
    let out = fx.echo_on("home/us-east-1/twin-host", SECS).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let s = session_on(&fx, HOME_TWIN).await;
    assert_eq!(s.caller.account, "123456789012");
    assert!(s.caller.assumed.is_none(), "{:?}", s.caller);

    // By id, unqualified: ids are unique, found in whichever account.
    let out = fx.echo_on(PROD_TWIN, SECS).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // Policies see the account and region.
    let out = fx.echo_on("prod/us-east-1/east-host", SECS).await;
    assert!(
        !fx.sim
            .registry
            .describe(true)
            .iter()
            .chain(fx.sim.registry.describe(false).iter())
            .any(|s| s.target == PROD_EAST),
        "refused before any session"
    );
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no commands in prod's us-east-1"),
        "{}",
        show(&out)
    );

    // Unknown accounts and regions are named as such.
    for spec in ["staging/web-1", "prod/ap-south-1/twin-host"] {
        let out = fx.echo_on(spec, SECS).await;
        assert_eq!(out.status.code(), Some(255), "{}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no such account or region"),
            "{spec}: {}",
            show(&out)
        );
    }
    // A target in another region of the account is not found there.
    let out = fx.echo_on("prod/us-east-1/twin-host", SECS).await;
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("prod/us-east-1/twin-host is not an SSM managed instance"),
        "{}",
        show(&out)
    );
}
