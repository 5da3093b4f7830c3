//! NonInteractiveCommands, agent side (spec §7.3): `sh -c <command>` with no
//! PTY, stdout as Output, stderr as StdErr, then `EXIT_CODE: <n>`. Client
//! input is only scanned for 0x03 (SIGINT) and 0x1c (SIGQUIT).

use std::time::Duration;

use bytes::Bytes;
use ssm_datachannel::message::PayloadType;
use ssm_datachannel::payloads::format_exit_code;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::backend::{BackendIo, Outbox, ToBackend};
use super::run_as;
use crate::config::Mode;
use crate::documents::ResolvedDocument;
use crate::process::{ExecProcess, Signal};

/// Runs the command until it exits or the agent lets go; as the `run_as`
/// user when one is asked for ([`super::run_as`]).
pub async fn run(io: BackendIo, doc: ResolvedDocument, run_as: Option<String>) {
    let BackendIo { mut inbox, out } = io;
    let command = doc.command.clone().unwrap_or_default();
    let user = match run_as::resolve(run_as.as_deref()).await {
        Ok(user) => user,
        Err(reason) => {
            // The agent sends the error as StdErr (1 s after its 2 s
            // wait) and fails the plugin; no exit code is sent.
            let message = run_as::unable_to_start(&reason);
            if out.mode == Mode::Faithful {
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            out.send(PayloadType::StdErr, Bytes::from(message.clone()))
                .await;
            out.done(message).await;
            return;
        }
    };
    let process = match ExecProcess::spawn_as(&command, &[], user.as_ref()) {
        Ok(p) => p,
        Err(e) => {
            // The agent reports start failures as StdErr.
            out.send(PayloadType::StdErr, Bytes::from(e.to_string()))
                .await;
            out.send(PayloadType::ExitCode, Bytes::from(format_exit_code(127)))
                .await;
            out.done("").await;
            return;
        }
    };
    let (stdout, stderr, control) = process.split();
    let chunk = out.chunk_size();
    let outputs = async {
        tokio::join!(
            pump(&out, stdout, PayloadType::Output, chunk),
            pump(&out, stderr, PayloadType::StdErr, chunk)
        )
    };
    let signals = async {
        while let Some(item) = inbox.recv().await {
            if let ToBackend::Data(data) = item {
                for byte in data.iter() {
                    if let Some(sig) = Signal::from_control_byte(*byte) {
                        let _ = control.signal(sig);
                    }
                }
            }
        }
        let _ = control.kill();
    };
    tokio::select! {
        _ = outputs => {}
        _ = signals => return,
    }
    let code = control.wait().await.unwrap_or(-1);
    out.send(PayloadType::ExitCode, Bytes::from(format_exit_code(code)))
        .await;
    out.done("").await;
}

async fn pump(io: &Outbox, mut from: impl AsyncRead + Unpin, kind: PayloadType, chunk: usize) {
    let mut buf = vec![0u8; chunk];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let data = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                if !io.send(kind, data).await {
                    return;
                }
            }
        }
    }
}
