//! Shared helpers for integration tests: a simulator in this process, the
//! real aws-sdk-ssm client pointed at it, and small TCP servers; the local
//! stack builder of `ssmgate demo` and the benches, for [`gateway`].

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod gateway;
/// The demo's stack builder, compiled here whatever the features (the
/// simulator is a dev-dependency).
#[path = "../../src/demo/openssh.rs"]
pub mod openssh;
pub mod postgres;
#[path = "../../src/demo/stack.rs"]
pub mod stack;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ssm::config::{BehaviorVersion, Credentials, Region};
use sha2::{Digest, Sha256};
use ssm_datachannel::secret::Secret;
use ssm_datachannel::{ChannelConfig, Resumer, SessionKind};
use ssm_sim::config::SimConfig;
use ssm_sim::server::SimServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Starts a simulator from a TOML config.
pub async fn sim(toml: &str) -> SimServer {
    let config = SimConfig::from_toml_str(toml).expect("sim config");
    SimServer::start("127.0.0.1:0".parse().expect("addr"), config)
        .await
        .expect("sim starts")
}

/// The real SSM client, aimed at the simulator.
pub async fn ssm(sim: &SimServer) -> aws_sdk_ssm::Client {
    let conf = aws_sdk_ssm::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(sim.endpoint())
        .retry_config(aws_sdk_ssm::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_ssm::Client::from_conf(conf)
}

/// The AWS configuration the gateway loads, aimed at `endpoint` (a
/// simulator): fixed test credentials, no retries.
pub fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            )),
        )
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_ssm::config::retry::RetryConfig::disabled())
        .build()
}

/// The gateway's AWS client ([`ssmgate::aws::Ssm`]) aimed at the simulator.
pub fn gateway_api(sim: &SimServer) -> ssmgate::aws::Ssm {
    ssmgate::aws::Ssm::from_config(&sdk_config(&sim.endpoint()))
}

/// StartSession through the SDK; returns a channel config for it.
pub async fn start(
    client: &aws_sdk_ssm::Client,
    target: &str,
    document: Option<&str>,
    params: &[(&str, &str)],
    kind: SessionKind,
) -> ChannelConfig {
    let mut req = client
        .start_session()
        .target(target)
        .reason("integration test");
    if let Some(doc) = document {
        req = req.document_name(doc);
    }
    for (k, v) in params {
        req = req.parameters(*k, vec![(*v).to_owned()]);
    }
    let out = req.send().await.expect("StartSession");
    let mut config = ChannelConfig::new(
        out.stream_url().expect("StreamUrl").to_owned(),
        Secret::new(out.token_value().expect("TokenValue")),
        out.session_id().expect("SessionId").to_owned(),
        kind,
    );
    config.resumer = Some(Arc::new(SdkResumer(client.clone())));
    config
}

/// ResumeSession through the SDK.
pub struct SdkResumer(pub aws_sdk_ssm::Client);

#[async_trait::async_trait]
impl Resumer for SdkResumer {
    async fn resume(
        &self,
        session_id: &str,
    ) -> Result<Option<Secret>, ssm_datachannel::ResumeError> {
        let out = self
            .0
            .resume_session()
            .session_id(session_id)
            .send()
            .await
            .map_err(|e| format!("{}", aws_sdk_ssm::error::DisplayErrorContext(e)))?;
        Ok(out.token_value().map(Secret::new))
    }
}

/// A TCP echo server; returns its address.
pub async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// Deterministic test data.
pub fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Writes `payload` to a stream while reading the same number of bytes
/// back; returns what was read.
pub async fn echo_through<S>(stream: S, payload: Vec<u8>) -> Vec<u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let len = payload.len();
    let (mut r, mut w) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        w.write_all(&payload).await.expect("write");
        w
    });
    let mut got = vec![0u8; len];
    tokio::time::timeout(Duration::from_secs(120), r.read_exact(&mut got))
        .await
        .expect("echo in time")
        .expect("read");
    let _w = writer.await.expect("writer");
    got
}

/// A sim config with one online instance `i-0000000000000001` whose port
/// `port` maps to `dest`.
pub fn one_instance(mode: &str, faults: &str, port: u16, dest: SocketAddr) -> String {
    format!(
        r#"mode = "{mode}"
[faults]
{faults}

[[instances]]
id = "i-0000000000000001"
name = "web-1"
ports = {{ "{port}" = "{dest}" }}
"#
    )
}

/// Makes OS user `name` exist (useradd, no home) for tests that run
/// sessions as another user; false, with the reason printed, when this
/// process cannot (not root, no useradd).
pub fn ensure_os_user(name: &str) -> bool {
    let run =
        |program: &str, args: &[&str]| std::process::Command::new(program).args(args).output();
    let root = run("id", &["-u"]).is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        eprintln!("skipped: switching to OS user {name} needs root");
        return false;
    }
    if run("id", &[name]).is_ok_and(|o| o.status.success()) {
        return true;
    }
    match run("useradd", &["--no-create-home", "--shell", "/bin/sh", name]) {
        // Another test may have created it meanwhile.
        Ok(o) if o.status.success() || String::from_utf8_lossy(&o.stderr).contains("exists") => {
            true
        }
        Ok(o) => {
            eprintln!(
                "skipped: useradd {name} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            false
        }
        Err(e) => {
            eprintln!("skipped: no useradd: {e}");
            false
        }
    }
}

/// True when `program` is on PATH (tests of optional clients skip
/// without it, saying so).
pub fn installed(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
