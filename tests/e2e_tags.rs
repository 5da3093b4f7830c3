//! End to end: policies on tags, with tags read as on real AWS — EC2
//! instances' through the Resource Groups Tagging API, hybrid nodes'
//! through SSM `ListTagsForResource` (which the simulator, like SSM,
//! refuses for EC2 ids) — and a tag API that fails: the request is
//! refused naming the cause, audited, and works again once AWS does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::gateway::{DB_1, Fixture, Options, WEB_1, show};

const SECS: u64 = 30;
const EDGE_1: &str = "mi-0e0000000000000b1";
/// A hybrid node tagged like db-1: the same policy must refuse it.
const HYBRID: &str =
    "\n[[instances]]\nid = \"mi-0e0000000000000b1\"\nname = \"edge-1\"\ntags = { role = \"db\" }\n";

async fn fixture() -> Fixture {
    Fixture::start_opts(Options {
        sim: HYBRID.to_owned(),
        ..Options::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_on_tags_decide_for_ec2_and_hybrid_targets() {
    let fx = fixture().await;
    let calls = |op: &str| fx.sim.registry.api_calls(op);

    let out = fx.echo_on("web-1", SECS).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    assert!(calls("GetResources") >= 1, "EC2 tags from the Tagging API");
    assert_eq!(
        calls("ListTagsForResource"),
        0,
        "never asked SSM for EC2 tags"
    );

    // role=db on an EC2 instance and on a hybrid node: both refused by
    // the same forbid, so both tag sources were read.
    for (target, id) in [("db-1", DB_1), ("edge-1", EDGE_1)] {
        let out = fx.echo_on(target, SECS).await;
        assert_eq!(out.status.code(), Some(255), "{target}: {}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("db targets are reached by port forwarding only"),
            "{id}: {}",
            show(&out)
        );
    }
    assert_eq!(calls("ListTagsForResource"), 1, "the hybrid node's tags");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_tag_source_refuses_with_the_cause_is_audited_and_recovers() {
    let fx = fixture().await;
    let faults = fx.sim.registry.api_faults();

    faults.fail("GetResources", "ThrottledException", "Rate exceeded", None);
    let out = fx.echo_on("web-1", SECS).await;
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("the tags of {WEB_1} could not be read (AWS is throttling Resource Groups Tagging API requests; try again in a moment), so access to it cannot be decided")),
        "{}",
        show(&out)
    );
    // The SDK's standard retry tried again before giving up.
    assert!(fx.sim.registry.api_calls("GetResources") >= 2);

    faults.fail(
        "GetResources",
        "AccessDeniedException",
        "User: arn:aws:sts::123456789012:assumed-role/gw/x is not authorized to perform: tag:GetResources",
        None,
    );
    let out = fx.echo_on("web-1", SECS).await;
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("(AWS denied the gateway access to them)"),
        "{}",
        show(&out)
    );
    assert!(!err.contains("arn:aws"), "the role is not shown: {err}");

    let audited: Vec<_> = fx
        .audit_rows()
        .await
        .into_iter()
        .filter(|(kind, _, detail)| {
            kind == "decision_deny" && detail.contains("\"undecidable\":true")
        })
        .collect();
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert!(audited[0].2.contains("AWS is throttling"), "{audited:?}");
    assert!(
        audited[1].2.contains("AWS denied the request"),
        "{audited:?}"
    );
    assert!(audited.iter().all(|(_, user, _)| user == "alice"));

    // Once AWS answers again, so does the gateway: failures are not cached.
    faults.clear("GetResources");
    let out = fx.echo_on("web-1", SECS).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    // And the policy still sees the tags (db-1 is refused by its tag).
    let out = fx.echo_on("db-1", SECS).await;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("port forwarding only"),
        "{}",
        show(&out)
    );
}
