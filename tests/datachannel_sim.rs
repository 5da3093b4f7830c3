//! Our data-channel client against the running simulator, over real
//! WebSockets, with sessions started by the real aws-sdk-ssm client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use ssm_datachannel::io::byte_stream;
use ssm_datachannel::port::PortMode;
use ssm_datachannel::smux;
use ssm_datachannel::{
    CloseReason, DataChannelError, Event, Events, SessionInfo, SessionKind, open,
};

const TARGET: &str = "i-0000000000000001";

/// Collected events until the channel closed.
#[derive(Default, Debug)]
struct Outcome {
    output: Vec<u8>,
    stderr: Vec<u8>,
    exit: Option<i32>,
    reconnects: u32,
    closed: Option<CloseReason>,
}

async fn collect(mut events: Events) -> Outcome {
    let mut o = Outcome::default();
    let run = async {
        while let Some(ev) = events.recv().await {
            match ev {
                Event::Output(b) => o.output.extend_from_slice(&b),
                Event::StdErr(b) => o.stderr.extend_from_slice(&b),
                Event::ExitCode(c) => o.exit = Some(c),
                Event::Reconnected { .. } => o.reconnects += 1,
                Event::Closed(r) => {
                    o.closed = Some(r);
                    break;
                }
                Event::Ready(_) | Event::Flag(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("channel closes in time");
    o
}

async fn wait_ready(events: &mut Events) -> SessionInfo {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), events.recv()).await {
            Ok(Some(Event::Ready(info))) => return *info,
            Ok(Some(Event::Closed(r))) => panic!("closed before ready: {r:?}"),
            Ok(Some(_)) => {}
            other => panic!("no Ready event: {other:?}"),
        }
    }
}

async fn shell_sim() -> (ssm_sim::server::SimServer, aws_sdk_ssm::Client) {
    let echo = echo_server().await;
    let sim = sim(&one_instance("fast", "", 22, echo)).await;
    let client = ssm(&sim).await;
    (sim, client)
}

#[tokio::test]
async fn shell_runs_in_a_pty_and_ends_with_channel_closed() {
    let (_sim, client) = shell_sim().await;
    let cfg = start(&client, TARGET, None, &[], SessionKind::Shell).await;
    let (ch, events) = open(cfg).await.expect("open");
    ch.resize(80, 24).await.expect("size");
    ch.write(Bytes::from_static(b"echo hello; exit 3\n"))
        .await
        .expect("write");
    let o = collect(events).await;
    let text = String::from_utf8_lossy(&o.output);
    assert!(text.contains("hello"), "output: {text:?}");
    assert!(
        matches!(o.closed, Some(CloseReason::ChannelClosed { .. })),
        "{:?}",
        o.closed
    );
}

#[tokio::test]
async fn resize_changes_stty_size() {
    let (_sim, client) = shell_sim().await;
    let cfg = start(&client, TARGET, None, &[], SessionKind::Shell).await;
    let (ch, events) = open(cfg).await.expect("open");
    ch.resize(100, 40).await.expect("size");
    ch.write(Bytes::from_static(b"stty size; exit\n"))
        .await
        .expect("write");
    let o = collect(events).await;
    let text = String::from_utf8_lossy(&o.output);
    assert!(text.contains("40 100"), "output: {text:?}");
}

async fn exec(client: &aws_sdk_ssm::Client, command: &str) -> Outcome {
    let cfg = start(
        client,
        TARGET,
        Some("AWS-StartNonInteractiveCommand"),
        &[("command", command)],
        SessionKind::Exec,
    )
    .await;
    let (_ch, events) = open(cfg).await.expect("open");
    collect(events).await
}

#[tokio::test]
async fn exec_keeps_stdout_stderr_apart_and_returns_exit_codes() {
    let (_sim, client) = shell_sim().await;
    let o = exec(&client, "echo out; echo err >&2; exit 42").await;
    assert_eq!(String::from_utf8_lossy(&o.output), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    assert_eq!(o.exit, Some(42));
    for code in [0, 1] {
        let o = exec(&client, &format!("exit {code}")).await;
        assert_eq!(o.exit, Some(code));
    }
}

async fn stream_session(sim_faults: &str, mib: usize) -> (Vec<u8>, Vec<u8>) {
    let echo = echo_server().await;
    let sim = sim(&one_instance("fast", sim_faults, 22, echo)).await;
    let client = ssm(&sim).await;
    let cfg = start(
        &client,
        TARGET,
        Some("AWS-StartSSHSession"),
        &[("portNumber", "22")],
        SessionKind::Port,
    )
    .await;
    let (ch, mut events) = open(cfg).await.expect("open");
    let info = wait_ready(&mut events).await;
    assert_eq!(PortMode::for_session(&info), PortMode::Stream);
    let bs = byte_stream(ch, events);
    let sent = data(mib << 20, 1);
    let got = echo_through(bs.stream, sent.clone()).await;
    (sent, got)
}

#[tokio::test]
async fn port_stream_mode_moves_64_mib_intact() {
    let (sent, got) = stream_session("", 64).await;
    assert_eq!(sha(&sent), sha(&got));
}

#[tokio::test]
async fn port_stream_mode_survives_drops_duplicates_and_reordering() {
    let faults = "drop_rate = 0.1\nduplicate_rate = 0.1\nreorder_rate = 0.1\nseed = 42";
    let (sent, got) = stream_session(faults, 16).await;
    assert_eq!(sha(&sent), sha(&got));
}

#[tokio::test]
async fn mux_mode_moves_4_parallel_streams_intact() {
    let echo = echo_server().await;
    let port = echo.port();
    let sim = sim(&one_instance("fast", "", port, echo)).await;
    let client = ssm(&sim).await;
    let port_s = port.to_string();
    let cfg = start(
        &client,
        TARGET,
        Some("AWS-StartPortForwardingSession"),
        &[("portNumber", &port_s)],
        SessionKind::Port,
    )
    .await;
    let (ch, mut events) = open(cfg).await.expect("open");
    let info = wait_ready(&mut events).await;
    let PortMode::Mux { keepalive } = PortMode::for_session(&info) else {
        panic!("expected mux, got {info:?}");
    };
    assert!(!keepalive);
    let bs = byte_stream(ch, events);
    let (r, w) = tokio::io::split(bs.stream);
    let config = smux::Config {
        keepalive: None,
        ..smux::Config::default()
    };
    let session = smux::Session::client(r, w, config);
    let mut tasks = Vec::new();
    for i in 0..4u8 {
        let stream = session.open_stream().await.expect("stream");
        tasks.push(tokio::spawn(async move {
            let sent = data(16 << 20, i);
            let got = echo_through(stream, sent.clone()).await;
            (sha(&sent), sha(&got))
        }));
    }
    for t in tasks {
        let (a, b) = t.await.expect("task");
        assert_eq!(a, b);
    }
}

#[tokio::test]
async fn websocket_cut_mid_transfer_resumes_without_loss() {
    let echo = echo_server().await;
    let sim = sim(&one_instance("fast", "close_after = 3000", 22, echo)).await;
    let client = ssm(&sim).await;
    let cfg = start(
        &client,
        TARGET,
        Some("AWS-StartSSHSession"),
        &[("portNumber", "22")],
        SessionKind::Port,
    )
    .await;
    let (ch, mut events) = open(cfg).await.expect("open");
    wait_ready(&mut events).await;
    // Count reconnects while passing output on to a byte pipe.
    let (mine, theirs) = tokio::io::duplex(1 << 20);
    let (reconnects_tx, reconnects_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut w = theirs;
        let mut n = 0u32;
        while let Some(ev) = events.recv().await {
            match ev {
                Event::Output(b) if w.write_all(&b).await.is_err() => break,
                Event::Reconnected { .. } => n += 1,
                Event::Closed(_) => break,
                _ => {}
            }
        }
        let _ = reconnects_tx.send(n);
    });
    let sent = data(16 << 20, 7);
    let writer = {
        let ch = ch.clone();
        let sent = Bytes::from(sent.clone());
        tokio::spawn(async move { ch.write(sent).await })
    };
    let mut got = vec![0u8; sent.len()];
    use tokio::io::AsyncReadExt;
    let mut mine = mine;
    tokio::time::timeout(Duration::from_secs(60), mine.read_exact(&mut got))
        .await
        .expect("in time")
        .expect("read");
    writer.await.expect("writer").expect("write");
    assert_eq!(sha(&sent), sha(&got));
    ch.close().await;
    let n = tokio::time::timeout(Duration::from_secs(10), reconnects_rx)
        .await
        .expect("events end")
        .expect("count");
    assert!(n >= 1, "the socket was cut and resumed");
}

#[tokio::test]
async fn refused_resume_ends_with_a_clear_error_not_a_hang() {
    let echo = echo_server().await;
    let sim = sim(&one_instance(
        "fast",
        "close_after = 200\nrefuse_resume = true",
        22,
        echo,
    ))
    .await;
    let client = ssm(&sim).await;
    let cfg = start(
        &client,
        TARGET,
        Some("AWS-StartSSHSession"),
        &[("portNumber", "22")],
        SessionKind::Port,
    )
    .await;
    let (ch, mut events) = open(cfg).await.expect("open");
    wait_ready(&mut events).await;
    let writer = tokio::spawn(async move { ch.write(Bytes::from(data(4 << 20, 3))).await });
    let o = collect(events).await;
    match o.closed {
        Some(CloseReason::Error(DataChannelError::ReconnectFailed { attempts, last })) => {
            assert_eq!(attempts, 6);
            assert!(last.contains("ResumeSession"), "{last}");
        }
        other => panic!("expected ReconnectFailed, got {other:?}"),
    }
    assert!(writer.await.expect("task").is_err());
}

#[tokio::test]
async fn a_wrong_token_is_refused_and_never_echoed() {
    let (_sim, client) = shell_sim().await;
    let mut cfg = start(&client, TARGET, None, &[], SessionKind::Shell).await;
    cfg.token = ssm_datachannel::secret::Secret::new("not-the-token-XYZZY");
    cfg.resumer = None;
    let debug = format!("{:?}", cfg.token);
    assert!(!debug.contains("XYZZY"));
    let (_ch, events) = open(cfg)
        .await
        .expect("the socket opens; the open frame is refused");
    let o = collect(events).await;
    match o.closed {
        Some(CloseReason::Error(e @ DataChannelError::ConnectionLost(_))) => {
            assert!(!e.to_string().contains("XYZZY"), "{e}");
        }
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
}

#[tokio::test]
async fn terminate_session_closes_the_channel() {
    let (_sim, client) = shell_sim().await;
    let cfg = start(&client, TARGET, None, &[], SessionKind::Shell).await;
    let id = cfg.session_id.clone();
    let (_ch, events) = open(cfg).await.expect("open");
    tokio::time::sleep(Duration::from_millis(200)).await;
    client
        .terminate_session()
        .session_id(&id)
        .send()
        .await
        .expect("terminate");
    let o = collect(events).await;
    assert!(
        matches!(o.closed, Some(CloseReason::ChannelClosed { .. })),
        "{:?}",
        o.closed
    );
}

#[tokio::test]
async fn basic_mode_redials_after_disconnect_to_port() {
    use ssm_datachannel::payloads::Flag;
    let echo = echo_server().await;
    let port = echo.port();
    let toml = format!(
        "mode = \"fast\"\n[[instances]]\nid = \"i-0000000000000002\"\nagent_version = \"3.0.100.0\"\nports = {{ \"{port}\" = \"{echo}\" }}\n"
    );
    let sim = sim(&toml).await;
    let client = ssm(&sim).await;
    let port_s = port.to_string();
    let cfg = start(
        &client,
        "i-0000000000000002",
        Some("AWS-StartPortForwardingSession"),
        &[("portNumber", &port_s)],
        SessionKind::Port,
    )
    .await;
    let (ch, mut events) = open(cfg).await.expect("open");
    let info = wait_ready(&mut events).await;
    assert_eq!(PortMode::for_session(&info), PortMode::Basic);
    for round in 0..2u8 {
        let sent = data(256 << 10, round);
        ch.write(Bytes::from(sent.clone())).await.expect("write");
        let mut got = Vec::new();
        while got.len() < sent.len() {
            match tokio::time::timeout(Duration::from_secs(20), events.recv()).await {
                Ok(Some(Event::Output(b))) => got.extend_from_slice(&b),
                other => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!(sha(&sent), sha(&got), "round {round}");
        // Like the plugin when its local connection closes.
        ch.send_flag(Flag::DisconnectToPort).await.expect("flag");
    }
    ch.send_flag(Flag::TerminateSession).await.expect("flag");
    let o = collect(events).await;
    assert!(
        matches!(o.closed, Some(CloseReason::ChannelClosed { .. })),
        "{:?}",
        o.closed
    );
}
