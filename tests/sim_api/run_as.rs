//! Run As: a session started with role credentials whose session tags
//! hold `SSMSessionRunAs` runs as that OS user on the sim's agent (shell
//! and command sessions), and a user that does not exist fails the
//! session the way amazon-ssm-agent fails it. Through the real STS and SSM
//! clients and our data-channel client.

use std::time::Duration;

use aws_sdk_sts::config::Credentials;
use aws_sdk_sts::types::Tag;
use bytes::Bytes;
use ssm_datachannel::secret::Secret;
use ssm_datachannel::{ChannelConfig, CloseReason, Event, Events, SessionKind, open};
use ssm_sim::config::{Mode, SimConfig};
use ssm_sim::server::SimServer;

use super::{AKID, WEB};

/// A user the test creates when it runs as root.
const TEST_USER: &str = "ssmsimrunas";

async fn full_sim() -> SimServer {
    let config = SimConfig {
        mode: Mode::Fast,
        ..SimConfig::default()
    };
    SimServer::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

/// Credentials of a role session tagged `SSMSessionRunAs = user`.
async fn run_as_credentials(sim: &SimServer, user: &str) -> Credentials {
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
            .region(aws_sdk_sts::config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new(AKID, "secret", None, None, "test"))
            .endpoint_url(sim.endpoint())
            .build(),
    );
    let out = sts
        .assume_role()
        .role_arn("arn:aws:iam::123456789012:role/runner")
        .role_session_name("runner")
        .tags(
            Tag::builder()
                .key("SSMSessionRunAs")
                .value(user)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let c = out.credentials().unwrap();
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "assumed",
    )
}

#[derive(Debug, Default)]
struct Outcome {
    output: String,
    stderr: String,
    exit: Option<i32>,
    closed: Option<CloseReason>,
}

async fn collect(mut events: Events) -> Outcome {
    let mut o = Outcome::default();
    let run = async {
        while let Some(ev) = events.recv().await {
            match ev {
                Event::Output(b) => o.output.push_str(&String::from_utf8_lossy(&b)),
                Event::StdErr(b) => o.stderr.push_str(&String::from_utf8_lossy(&b)),
                Event::ExitCode(c) => o.exit = Some(c),
                Event::Closed(r) => {
                    o.closed = Some(r);
                    break;
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the channel closes in time");
    o
}

/// Runs `command` in a session (NonInteractiveCommands, or a shell when
/// `shell`) with `creds`.
async fn session(sim: &SimServer, creds: Credentials, command: &str, shell: bool) -> Outcome {
    let ssm = aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::Config::builder()
            .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
            .region(aws_sdk_ssm::config::Region::new("us-east-1"))
            .credentials_provider(creds)
            .endpoint_url(sim.endpoint())
            .build(),
    );
    let mut req = ssm.start_session().target(WEB);
    if !shell {
        req = req
            .document_name("AWS-StartNonInteractiveCommand")
            .parameters("command", vec![command.to_owned()]);
    }
    let out = req.send().await.unwrap();
    let kind = if shell {
        SessionKind::Shell
    } else {
        SessionKind::Exec
    };
    let config = ChannelConfig::new(
        out.stream_url().unwrap().to_owned(),
        Secret::new(out.token_value().unwrap()),
        out.session_id().unwrap().to_owned(),
        kind,
    );
    let (channel, events) = open(config).await.unwrap();
    if shell {
        channel.resize(80, 24).await.unwrap();
        channel
            .write(Bytes::from(format!("{command}; exit\n")))
            .await
            .unwrap();
    }
    let outcome = collect(events).await;
    drop(channel);
    outcome
}

fn whoami() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn is_root() -> bool {
    let out = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// Creates [`TEST_USER`] when absent; false (with the reason printed) when
/// this test cannot.
fn ensure_test_user() -> bool {
    if !is_root() {
        eprintln!("skipping the switch to another user: the tests do not run as root");
        return false;
    }
    let exists = std::process::Command::new("id")
        .arg(TEST_USER)
        .output()
        .is_ok_and(|o| o.status.success());
    if exists {
        return true;
    }
    match std::process::Command::new("useradd")
        .args(["--no-create-home", "--shell", "/bin/sh", TEST_USER])
        .output()
    {
        // Another test may have created it meanwhile.
        Ok(o) if o.status.success() || String::from_utf8_lossy(&o.stderr).contains("exists") => {
            true
        }
        Ok(o) => {
            eprintln!(
                "skipping the switch to another user: useradd failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            false
        }
        Err(e) => {
            eprintln!("skipping the switch to another user: no useradd: {e}");
            false
        }
    }
}

#[tokio::test]
async fn sessions_run_as_the_tagged_user() {
    let sim = full_sim().await;
    let mut users = vec![whoami()];
    if ensure_test_user() {
        users.push(TEST_USER.to_owned());
    }
    for user in users {
        let creds = run_as_credentials(&sim, &user).await;
        let o = session(&sim, creds.clone(), "whoami; echo \"home=$HOME\"", false).await;
        assert_eq!(
            o.output,
            format!("{user}\nhome=/home/{user}\n"),
            "{user}: {o:?}"
        );
        assert_eq!(o.exit, Some(0), "{o:?}");
        let o = session(&sim, creds, "whoami", true).await;
        assert!(o.output.contains(&format!("{user}\r\n")), "{user}: {o:?}");
    }
}

#[tokio::test]
async fn a_missing_run_as_user_fails_the_session_as_the_agent_does() {
    let sim = full_sim().await;
    let user = "no-such-user-ssmsim";
    let creds = run_as_credentials(&sim, user).await;
    let expected = format!(
        "Unable to start command: failed to start pty since RunAs user {user} does not exist\n"
    );

    // A command: the error as StdErr, no exit code, then channel_closed.
    let o = session(&sim, creds.clone(), "whoami", false).await;
    assert_eq!(o.stderr, expected, "{o:?}");
    assert_eq!(o.output, "");
    assert_eq!(o.exit, None);
    assert_eq!(
        o.closed,
        Some(CloseReason::ChannelClosed {
            output: expected.clone()
        })
    );
    // A shell: nothing runs; channel_closed carries the error.
    let o = session(&sim, creds, "whoami", true).await;
    assert!(!o.output.contains("root"), "{o:?}");
    assert_eq!(
        o.closed,
        Some(CloseReason::ChannelClosed { output: expected })
    );
}
