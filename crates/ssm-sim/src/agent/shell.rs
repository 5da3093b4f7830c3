//! Shell sessions, agent side (spec §11.3): Standard_Stream runs the
//! instance's shell and InteractiveCommands runs `sh -c <command>`, both in
//! a real PTY. Output is cut like the agent cuts it (≤1024 bytes, never
//! inside a UTF-8 character); faithful mode also waits 1 s before the first
//! read and 1 ms between messages.

use std::time::Duration;

use ssm_datachannel::message::PayloadType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::backend::{BackendIo, ToBackend};
use super::run_as;
use crate::chunker::Chunker;
use crate::config::Mode;
use crate::documents::{ResolvedDocument, SessionType};
use crate::inventory::Instance;
use crate::process::{PtyProcess, PtySpawn, shell_command_argv};

/// Runs a shell-like session until the process exits or the agent lets go;
/// as the `run_as` user when one is asked for ([`super::run_as`]).
pub async fn run(io: BackendIo, doc: ResolvedDocument, instance: Instance, run_as: Option<String>) {
    let argv = match (doc.session_type, doc.command.as_deref()) {
        (SessionType::InteractiveCommands, Some(cmd)) => shell_command_argv(cmd),
        _ => instance.shell.clone(),
    };
    let BackendIo { mut inbox, out } = io;
    let user = match run_as::resolve(run_as.as_deref()).await {
        Ok(user) => user,
        Err(reason) => {
            // The agent marks the plugin failed 2 s after logging it.
            if out.mode == Mode::Faithful {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            out.done(run_as::unable_to_start(&reason)).await;
            return;
        }
    };
    let spec = PtySpawn {
        env: vec![("SSM_INSTANCE_ID".into(), instance.id.clone())],
        user,
        ..PtySpawn::new(argv)
    };
    let process = match PtyProcess::spawn(&spec) {
        Ok(p) => p,
        Err(e) => {
            out.done(format!("Unable to start shell: {e}")).await;
            return;
        }
    };
    let (mut output, mut input, control) = process.split();
    let faithful = out.mode == Mode::Faithful;
    let mut chunker = Chunker::new(out.chunk_size());
    let pump = async {
        if faithful {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let mut buf = vec![0u8; chunker.max()];
        loop {
            let n = match output.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for chunk in chunker.push(buf.get(..n).unwrap_or_default()) {
                if !out.send(PayloadType::Output, chunk).await {
                    return;
                }
                if faithful {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        if let Some(rest) = chunker.finish() {
            out.send(PayloadType::Output, rest).await;
        }
    };
    let feed = async {
        while let Some(item) = inbox.recv().await {
            match item {
                ToBackend::Data(data) => {
                    if input.write_all(&data).await.is_err() {
                        break;
                    }
                }
                ToBackend::Size { cols, rows } => {
                    let _ = control.resize(cols, rows);
                }
                ToBackend::Flag(_) => {}
            }
        }
        // The agent let go: the session is over, stop the process.
        let _ = control.kill();
    };
    tokio::select! {
        _ = pump => {}
        _ = feed => return,
    }
    let _ = control.wait().await;
    out.done("").await;
}
