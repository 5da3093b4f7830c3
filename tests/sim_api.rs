//! The simulator's SSM API driven by the real `aws-sdk-ssm` client over a
//! real socket: session lifecycle, validation and error shapes, instance
//! listing with filters and pagination, documents, tags, and config errors;
//! the tagging API's GetResources and STS on the same endpoint; several
//! accounts and regions in one sim.

// Test helpers outside `#[test]` functions panic on failure by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::SocketAddr;

use aws_sdk_ssm::Client;
use aws_sdk_ssm::config::retry::RetryConfig;
use aws_sdk_ssm::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::types::{SessionFilter as SdkSessionFilter, SessionFilterKey, SessionState};
use ssm_sim::api::router;
use ssm_sim::config::FaultConfig;
use ssm_sim::inventory::Inventory;
use ssm_sim::registry::{Registry, SessionStatus};

#[path = "sim_api/accounts.rs"]
mod accounts;
#[path = "sim_api/instances.rs"]
mod instances;
#[path = "sim_api/run_as.rs"]
mod run_as;
#[path = "sim_api/sts.rs"]
mod sts;
#[path = "sim_api/tagging.rs"]
mod tagging;
#[path = "sim_api/wire.rs"]
mod wire;

const WEB: &str = "i-0a1b2c3d4e5f60001";
const DB: &str = "i-0a1b2c3d4e5f60002";
const EDGE: &str = "mi-0a1b2c3d4e5f60003";
const OFFLINE: &str = "i-0a1b2c3d4e5f60004";
const AKID: &str = "AKIDSIMTEST";
/// The IAM user a plain access key stands for in the sim.
const AKID_ARN: &str = "arn:aws:iam::123456789012:user/AKIDSIMTEST";

struct Sim {
    client: Client,
    registry: Registry,
    addr: SocketAddr,
}

async fn start(inventory: Inventory, faults: FaultConfig) -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let registry = Registry::new(inventory, format!("ws://{addr}"), faults);
    let app = router(registry.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let conf = aws_sdk_ssm::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(AKID, "secret", None, None, "test"))
        .endpoint_url(format!("http://{addr}"))
        .retry_config(RetryConfig::disabled())
        .build();
    Sim {
        client: Client::from_conf(conf),
        registry,
        addr,
    }
}

async fn default_sim() -> Sim {
    start(Inventory::default_instances(), FaultConfig::default()).await
}

/// The AWS error code and message of a service error.
fn service_error<E, R>(err: &SdkError<E, R>) -> (String, String)
where
    E: ProvideErrorMetadata + Debug,
    R: Debug,
{
    let e = err
        .as_service_error()
        .unwrap_or_else(|| panic!("not a service error: {err:?}"));
    (
        e.code().unwrap_or_default().to_owned(),
        e.message().unwrap_or_default().to_owned(),
    )
}

fn is_hex17(s: &str) -> bool {
    s.len() == 17
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[tokio::test]
async fn start_session_happy_path() {
    let sim = default_sim().await;
    let out = sim
        .client
        .start_session()
        .target(WEB)
        .reason("deploy")
        .send()
        .await
        .unwrap();
    let id = out.session_id().unwrap();
    let (owner, suffix) = id.rsplit_once('-').unwrap();
    assert_eq!(owner, AKID);
    assert!(is_hex17(suffix), "{id}");
    let token = out.token_value().unwrap();
    assert!(token.len() >= 32 && token.len() <= 300);
    assert_eq!(
        out.stream_url().unwrap(),
        format!(
            "ws://{}/v1/data-channel/{id}?role=publish_subscribe",
            sim.addr
        )
    );
    let entry = sim.registry.get(id).unwrap();
    assert_eq!(entry.status, SessionStatus::Connecting);
    assert_eq!(entry.target, WEB);
    assert_eq!(entry.owner, AKID_ARN);
    assert_eq!(entry.caller.name, AKID);
    assert!(entry.caller.assumed.is_none());
    assert_eq!(entry.reason.as_deref(), Some("deploy"));
    assert_eq!(entry.document.name, "SSM-SessionManagerRunShell");
    assert!(sim.registry.authorize_open(id, token).is_some());

    let pf = sim
        .client
        .start_session()
        .target(DB)
        .document_name("AWS-StartPortForwardingSession")
        .parameters("portNumber", vec!["5432".to_owned()])
        .send()
        .await
        .unwrap();
    let entry = sim.registry.get(pf.session_id().unwrap()).unwrap();
    assert_eq!(entry.document.port_number(), Some(5432));
    assert!(entry.document.is_local_port_forwarding());
    assert_ne!(pf.token_value(), out.token_value());
}

#[tokio::test]
async fn start_session_validation() {
    let sim = default_sim().await;
    let long = |n: usize| "x".repeat(n);
    type Case = (
        String,
        Option<String>,
        Option<String>,
        BTreeMap<String, Vec<String>>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            long(401),
            None,
            None,
            BTreeMap::new(),
            "at 'target' failed to satisfy constraint: Member must have length less than or equal to 400",
        ),
        (
            String::new(),
            None,
            None,
            BTreeMap::new(),
            "at 'target' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ),
        (
            WEB.into(),
            Some("ab".into()),
            None,
            BTreeMap::new(),
            r"at 'documentName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9_\-.:/]{3,128}$",
        ),
        (
            WEB.into(),
            Some("bad name!".into()),
            None,
            BTreeMap::new(),
            "at 'documentName'",
        ),
        (
            WEB.into(),
            Some(long(129)),
            None,
            BTreeMap::new(),
            "at 'documentName'",
        ),
        (
            WEB.into(),
            None,
            Some(long(257)),
            BTreeMap::new(),
            "at 'reason' failed to satisfy constraint: Member must satisfy regular expression pattern: ^.{1,256}$",
        ),
        (
            WEB.into(),
            None,
            Some(String::new()),
            BTreeMap::new(),
            "at 'reason'",
        ),
        (
            WEB.into(),
            None,
            None,
            BTreeMap::from([(long(256), vec!["1".into()])]),
            "at 'parameters' failed to satisfy constraint: Map keys must satisfy constraint",
        ),
        (
            WEB.into(),
            None,
            None,
            BTreeMap::from([("portNumber".into(), vec![String::new()])]),
            "at 'parameters.portNumber' failed to satisfy constraint",
        ),
        (
            WEB.into(),
            None,
            None,
            BTreeMap::from([("command".into(), vec![long(65536)])]),
            "Member must have length less than or equal to 65535",
        ),
    ];
    for (target, doc, reason, params, expected) in cases {
        let err = sim
            .client
            .start_session()
            .target(&target)
            .set_document_name(doc.clone())
            .set_reason(reason.clone())
            .set_parameters(Some(params.clone().into_iter().collect()))
            .send()
            .await
            .unwrap_err();
        let (code, message) = service_error(&err);
        assert_eq!(code, "ValidationException", "{doc:?} {reason:?}: {message}");
        assert!(
            message.starts_with("1 validation error detected: Value "),
            "{message}"
        );
        assert!(
            message.contains(expected),
            "{message}\nexpected: {expected}"
        );
    }

    // Two violations at once are both reported.
    let err = sim
        .client
        .start_session()
        .target(long(401))
        .document_name("ab")
        .send()
        .await
        .unwrap_err();
    assert!(
        service_error(&err)
            .1
            .starts_with("2 validation errors detected: ")
    );
    // Boundaries are accepted by validation (and then fail on the target).
    let err = sim
        .client
        .start_session()
        .target(long(400))
        .document_name(long(128))
        .reason(long(256))
        .send()
        .await
        .unwrap_err();
    assert_eq!(service_error(&err).0, "InvalidDocument");
}

#[tokio::test]
async fn start_session_target_and_document_errors() {
    let sim = default_sim().await;
    for target in ["i-ffffffffffffffff0", OFFLINE, "not-an-instance"] {
        let err = sim
            .client
            .start_session()
            .target(target)
            .send()
            .await
            .unwrap_err();
        let typed = err.as_service_error().unwrap();
        assert!(typed.is_target_not_connected(), "{target}: {err:?}");
        assert_eq!(service_error(&err).1, format!("{target} is not connected."));
    }

    let err = sim
        .client
        .start_session()
        .target(WEB)
        .document_name("AWS-NoSuchDocument")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error().unwrap().is_invalid_document(),
        "{err:?}"
    );

    let bad_params: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("AWS-StartSSHSession", vec![("portNumber", "70000")]),
        ("AWS-StartSSHSession", vec![("portNumber", "ssh")]),
        ("AWS-StartSSHSession", vec![("nope", "1")]),
        ("AWS-StartInteractiveCommand", vec![]),
        (
            "AWS-StartPortForwardingSessionToRemoteHost",
            vec![("portNumber", "80")],
        ),
        (
            "AWS-StartPortForwardingSession",
            vec![("localPortNumber", "-1")],
        ),
    ];
    for (doc, params) in bad_params {
        let mut req = sim.client.start_session().target(WEB).document_name(doc);
        for (k, v) in &params {
            req = req.parameters(*k, vec![(*v).to_owned()]);
        }
        let err = req.send().await.unwrap_err();
        let (code, message) = service_error(&err);
        assert_eq!(code, "InvalidParameters", "{doc} {params:?}: {message}");
    }
    assert!(sim.registry.describe(true).is_empty());
}

#[tokio::test]
async fn resume_and_terminate() {
    let sim = default_sim().await;
    let started = sim.client.start_session().target(WEB).send().await.unwrap();
    let id = started.session_id().unwrap();
    let old = started.token_value().unwrap();
    let handle = sim.registry.authorize_open(id, old).unwrap();

    let resumed = sim
        .client
        .resume_session()
        .session_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.session_id(), Some(id));
    let new = resumed.token_value().unwrap();
    assert_ne!(new, old);
    assert_eq!(resumed.stream_url(), started.stream_url());
    assert!(sim.registry.authorize_open(id, old).is_none());
    assert!(sim.registry.authorize_open(id, new).is_some());

    let out = sim
        .client
        .terminate_session()
        .session_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(out.session_id(), Some(id));
    assert!(*handle.terminated.borrow());
    assert!(sim.registry.authorize_open(id, new).is_none());
    // Idempotent.
    sim.client
        .terminate_session()
        .session_id(id)
        .send()
        .await
        .unwrap();

    let after = sim
        .client
        .resume_session()
        .session_id(id)
        .send()
        .await
        .unwrap();
    assert_eq!(after.session_id(), Some(id));
    assert_eq!(after.token_value(), None);

    let err = sim
        .client
        .resume_session()
        .session_id("AKIDSIMTEST-0123456789abcdef0")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_does_not_exist_exception()
    );
    let err = sim
        .client
        .terminate_session()
        .session_id("nobody-0123456789abcdef0")
        .send()
        .await
        .unwrap_err();
    assert_eq!(service_error(&err).0, "DoesNotExistException");
}

#[tokio::test]
async fn refuse_resume_fault() {
    let faults = FaultConfig {
        refuse_resume: true,
        ..FaultConfig::default()
    };
    let sim = start(Inventory::default_instances(), faults).await;
    let started = sim.client.start_session().target(WEB).send().await.unwrap();
    let id = started.session_id().unwrap();
    let err = sim
        .client
        .resume_session()
        .session_id(id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(service_error(&err).0, "AccessDeniedException");
    // The original token keeps working.
    assert!(
        sim.registry
            .authorize_open(id, started.token_value().unwrap())
            .is_some()
    );
}

#[tokio::test]
async fn describe_sessions_active_and_history() {
    let sim = default_sim().await;
    let a = sim.client.start_session().target(WEB).send().await.unwrap();
    let b = sim
        .client
        .start_session()
        .target(DB)
        .reason("db maintenance")
        .send()
        .await
        .unwrap();
    let c = sim
        .client
        .start_session()
        .target(EDGE)
        .send()
        .await
        .unwrap();
    let (a, b, c) = (
        a.session_id().unwrap(),
        b.session_id().unwrap(),
        c.session_id().unwrap(),
    );
    sim.registry.set_status(a, SessionStatus::Connected);
    sim.client
        .terminate_session()
        .session_id(b)
        .send()
        .await
        .unwrap();

    let active = sim
        .client
        .describe_sessions()
        .state(SessionState::Active)
        .send()
        .await
        .unwrap();
    let mut ids: Vec<_> = active
        .sessions()
        .iter()
        .map(|s| s.session_id().unwrap())
        .collect();
    ids.sort();
    let mut expected = vec![a, c];
    expected.sort();
    assert_eq!(ids, expected);
    let sa = active
        .sessions()
        .iter()
        .find(|s| s.session_id() == Some(a))
        .unwrap();
    assert_eq!(sa.status().unwrap().as_str(), "Connected");
    assert_eq!(sa.target(), Some(WEB));
    assert_eq!(sa.owner(), Some(AKID_ARN));
    assert_eq!(sa.document_name(), Some("SSM-SessionManagerRunShell"));
    assert!(sa.start_date().is_some() && sa.end_date().is_none());

    let history = sim
        .client
        .describe_sessions()
        .state(SessionState::History)
        .send()
        .await
        .unwrap();
    assert_eq!(history.sessions().len(), 1);
    let sb = &history.sessions()[0];
    assert_eq!(sb.session_id(), Some(b));
    assert_eq!(sb.status().unwrap().as_str(), "Terminated");
    assert_eq!(sb.reason(), Some("db maintenance"));
    assert!(sb.end_date().unwrap().secs() >= sb.start_date().unwrap().secs());

    let by_target = sim
        .client
        .describe_sessions()
        .state(SessionState::Active)
        .filters(
            SdkSessionFilter::builder()
                .key(SessionFilterKey::TargetId)
                .value(EDGE)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(by_target.sessions().len(), 1);
    assert_eq!(by_target.sessions()[0].session_id(), Some(c));

    let by_status = sim
        .client
        .describe_sessions()
        .state(SessionState::Active)
        .filters(
            SdkSessionFilter::builder()
                .key(SessionFilterKey::Status)
                .value("Connecting")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(by_status.sessions().len(), 1);

    let future = sim
        .client
        .describe_sessions()
        .state(SessionState::Active)
        .filters(
            SdkSessionFilter::builder()
                .key(SessionFilterKey::InvokedAfter)
                .value("2100-01-01T00:00:00Z")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(future.sessions().is_empty());

    // Pagination with MaxResults 1.
    let page1 = sim
        .client
        .describe_sessions()
        .state(SessionState::Active)
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(page1.sessions().len(), 1);
    let page2 = sim
        .client
        .describe_sessions()
        .state(SessionState::Active)
        .max_results(1)
        .next_token(page1.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page2.sessions().len(), 1);
    assert!(page2.next_token().is_none());
    assert_ne!(
        page1.sessions()[0].session_id(),
        page2.sessions()[0].session_id()
    );

    let err = sim
        .client
        .describe_sessions()
        .state(SessionState::Active)
        .filters(
            SdkSessionFilter::builder()
                .key(SessionFilterKey::from("Colour"))
                .value("x")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error().unwrap().is_invalid_filter_key(),
        "{err:?}"
    );
}
