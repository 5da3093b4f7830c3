//! The SSM API seam through `ssmgate::aws::Ssm` against the simulator:
//! StartSession (a working shell, typed errors), ResumeSession and
//! TerminateSession, SsmResumer under a dropped WebSocket, and the errors
//! of an unreachable endpoint and missing credentials.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ssm_datachannel::{ChannelConfig, Event, Events, SessionKind, open};
use ssmgate::aws::{Ssm, SsmApi, SsmError, SsmResumer, StartRequest};
use ssmgate::gateway::reason::compose_reason;
use ssmgate::inventory::{Inventory, ResolveError};

use super::common::*;
use super::{EDGE, OFFLINE, WEB, fleet};

/// Reads shell output until `needle` shows up.
async fn expect_output(events: &mut Events, needle: &str) -> String {
    let mut out = Vec::new();
    let wait = async {
        while let Some(ev) = events.recv().await {
            match ev {
                Event::Output(b) => {
                    out.extend_from_slice(&b);
                    if String::from_utf8_lossy(&out).contains(needle) {
                        return;
                    }
                }
                Event::Closed(r) => panic!("closed: {r:?}"),
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} in {:?}", String::from_utf8_lossy(&out)));
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn start_session_opens_a_working_shell_and_carries_the_reason() {
    let (sim, api, inv) = fleet().await;
    let target = inv.resolve("web-1").await.unwrap();
    let reason = compose_reason("alice", Some("INC-123 disk\nfull"), "gw-session-1");
    let started = api
        .start_session(&StartRequest {
            target: target.id.clone(),
            document: None,
            parameters: BTreeMap::new(),
            reason: reason.clone(),
        })
        .await
        .unwrap();
    assert!(!format!("{started:?}").contains(started.token.expose()));
    let mut config = ChannelConfig::new(
        started.stream_url.clone(),
        started.token.clone(),
        started.session_id.clone(),
        SessionKind::Shell,
    );
    config.resumer = Some(Arc::new(SsmResumer::new(api.clone())));
    let (ch, mut events) = open(config).await.unwrap();
    ch.resize(80, 24).await.unwrap();
    ch.write(Bytes::from_static(b"echo ssmgate-$((6*7))\n"))
        .await
        .unwrap();
    expect_output(&mut events, "ssmgate-42").await;

    let sessions = ssm(&sim)
        .await
        .describe_sessions()
        .state(aws_sdk_ssm::types::SessionState::Active)
        .send()
        .await
        .unwrap();
    let ours = sessions
        .sessions()
        .iter()
        .find(|s| s.session_id() == Some(started.session_id.as_str()))
        .expect("session listed");
    assert_eq!(ours.reason(), Some(reason.as_str()));
    assert_eq!(
        ours.reason(),
        Some("ssmgate user=alice session=gw-session-1 reason=\"INC-123 disk full\"")
    );
    api.terminate_session(&started.session_id).await.unwrap();
}

#[tokio::test]
async fn start_session_errors_are_typed_and_readable() {
    let (_sim, api, _inv) = fleet().await;
    let err = api
        .start_session(&StartRequest {
            target: OFFLINE.to_owned(),
            reason: "test".to_owned(),
            ..StartRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        SsmError::TargetNotConnected {
            target: OFFLINE.to_owned()
        }
    );
    assert_eq!(
        err.to_string(),
        format!("target {OFFLINE} is not connected to SSM")
    );

    let err = api
        .start_session(&StartRequest {
            target: WEB.to_owned(),
            document: Some("AWS-NoSuchDocument".to_owned()),
            ..StartRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "document AWS-NoSuchDocument not found");

    let err = api
        .start_session(&StartRequest {
            target: WEB.to_owned(),
            document: Some("AWS-StartSSHSession".to_owned()),
            parameters: BTreeMap::from([("portNumber".to_owned(), vec!["99999".to_owned()])]),
            ..StartRequest::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, SsmError::InvalidParameters(_)), "{err:?}");

    let err = api
        .start_session(&StartRequest {
            target: WEB.to_owned(),
            reason: "x".repeat(300),
            ..StartRequest::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, SsmError::Validation(_)), "{err:?}");
}

#[tokio::test]
async fn resume_gives_a_new_token_until_terminated() {
    let (_sim, api, _inv) = fleet().await;
    let started = api
        .start_session(&StartRequest {
            target: WEB.to_owned(),
            ..StartRequest::default()
        })
        .await
        .unwrap();
    let fresh = api.resume_session(&started.session_id).await.unwrap();
    let fresh = fresh.expect("a live session resumes");
    assert_ne!(fresh, started.token);
    assert!(!fresh.expose().is_empty());

    api.terminate_session(&started.session_id).await.unwrap();
    assert_eq!(api.resume_session(&started.session_id).await.unwrap(), None);

    let err = api
        .resume_session("nobody-0123456789abcdef0")
        .await
        .unwrap_err();
    assert!(matches!(err, SsmError::DoesNotExist(_)), "{err:?}");
}

#[tokio::test]
async fn a_dropped_websocket_resumes_through_ssm_resumer() {
    let echo = echo_server().await;
    let sim = sim(&one_instance("fast", "close_after = 40", 22, echo)).await;
    let api: Arc<dyn SsmApi> = Arc::new(gateway_api(&sim));
    let started = api
        .start_session(&StartRequest {
            target: "i-0000000000000001".to_owned(),
            document: Some("AWS-StartSSHSession".to_owned()),
            parameters: BTreeMap::from([("portNumber".to_owned(), vec!["22".to_owned()])]),
            reason: "resume test".to_owned(),
        })
        .await
        .unwrap();
    let mut config = ChannelConfig::new(
        started.stream_url,
        started.token,
        started.session_id,
        SessionKind::Port,
    );
    config.resumer = Some(Arc::new(SsmResumer::new(api.clone())));
    let (ch, mut events) = open(config).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(Event::Ready(_))) => break,
            Ok(Some(Event::Closed(r))) => panic!("closed before ready: {r:?}"),
            Ok(Some(_)) => {}
            other => panic!("no Ready event: {other:?}"),
        }
    }
    let payload = data(200 * 1024, 3);
    let writer = {
        let ch = ch.clone();
        let payload = Bytes::from(payload.clone());
        tokio::spawn(async move { ch.write(payload).await })
    };
    let mut got = Vec::new();
    let mut reconnects = 0;
    let run = async {
        while got.len() < payload.len() {
            match events.recv().await {
                Some(Event::Output(b)) => got.extend_from_slice(&b),
                Some(Event::Reconnected { .. }) => reconnects += 1,
                Some(Event::Closed(r)) => panic!("closed: {r:?}"),
                Some(_) => {}
                None => panic!("events ended"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("echo in time");
    writer.await.unwrap().unwrap();
    assert_eq!(sha(&got), sha(&payload));
    assert!(reconnects >= 1, "the sim cut the socket at least once");
    ch.close().await;
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let api = Ssm::from_config(&sdk_config(&format!("http://127.0.0.1:{port}")));
    let err = api.describe_instances().await.unwrap_err();
    assert!(matches!(err, SsmError::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("cannot reach the SSM endpoint: "),
        "{text}"
    );
    assert!(text.contains("Connection refused"), "{text}");
    assert!(!text.contains("ConnectorError {"), "no Debug noise: {text}");
    let inv = Inventory::new(Arc::new(api), Duration::from_secs(60));
    assert!(matches!(
        inv.resolve("web-1").await,
        Err(ResolveError::Api(SsmError::Unreachable { .. }))
    ));
}

#[tokio::test]
async fn a_silent_endpoint_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts connections and never answers.
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let conf = sdk_config(&format!("http://{addr}"))
        .to_builder()
        .timeout_config(
            aws_sdk_ssm::config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_millis(300))
                .build(),
        )
        .build();
    let api = Ssm::from_config(&conf);
    let started = std::time::Instant::now();
    let err = api.managed_instance_tags(EDGE).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot reach the SSM endpoint: the request timed out"
    );
    // EC2 tags: STS (for the account) is the first call, and times out.
    let err = api.ec2_instance_tags(&[WEB.to_owned()]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot reach the STS endpoint: the request timed out"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A credentials provider that has none.
#[derive(Debug)]
struct NoCredentials;

impl aws_credential_types::provider::ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::ready(Err(
            aws_credential_types::provider::error::CredentialsError::not_loaded(
                "nothing in the environment",
            ),
        ))
    }
}

#[tokio::test]
async fn missing_credentials_say_so() {
    let (sim, _api, _inv) = fleet().await;
    let conf = sdk_config(&sim.endpoint())
        .to_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(NoCredentials),
        )
        .build();
    let api = Ssm::from_config(&conf);
    let err = api.describe_instances().await.unwrap_err();
    assert!(matches!(err, SsmError::Credentials(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the gateway's AWS credentials are missing, expired or invalid: no AWS credentials were found (the credential provider was not enabled: nothing in the environment)"
    );
}
