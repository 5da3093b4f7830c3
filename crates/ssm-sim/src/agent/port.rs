//! Port sessions, agent side (spec §11.4): real TCP connections from the
//! simulator to `127.0.0.1:<portNumber>` (or the instance's port map, or the
//! document's `host`), in the mode the real agent would pick:
//! - mux (smux server) for LocalPortForwarding with clients ≥ 1.1.70, when
//!   the instance's agent version is above 3.0.196.0;
//! - basic (one connection, re-dialled after DisconnectToPort) for older
//!   LocalPortForwarding clients;
//! - stream for the rest (AWS-StartSSHSession): the destination's EOF ends
//!   the session.

use std::cmp::Ordering;

use bytes::{Bytes, BytesMut};
use ssm_datachannel::message::PayloadType;
use ssm_datachannel::payloads::Flag;
use ssm_datachannel::smux;
use ssm_datachannel::version::agent_compare;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::backend::{BackendIo, Inbox, Outbox, ToBackend};
use crate::documents::ResolvedDocument;
use crate::inventory::Instance;

/// Clients from this version on get smux…
const MUX_MIN_CLIENT: &str = "1.1.70";
/// …from agents above this version (older agents only had basic mode).
const MUX_MIN_AGENT: &str = "3.0.196.0";
/// Clients above this version get smux without keepalive.
const NO_KEEPALIVE_CLIENT: &str = "1.2.331.0";

/// Runs a port session until it ends.
pub async fn run(io: BackendIo, doc: ResolvedDocument, instance: Instance, client_version: String) {
    let Some(port) = doc.port_number() else {
        io.out.done("The document has no valid portNumber.").await;
        return;
    };
    let address = match doc.host() {
        Some(host) => format!("{host}:{port}"),
        None => instance.dial_address(port),
    };
    let local = doc.is_local_port_forwarding();
    let agent_has_mux = agent_compare(&instance.agent_version, MUX_MIN_AGENT) == Ordering::Greater;
    if local && agent_has_mux && agent_compare(&client_version, MUX_MIN_CLIENT) != Ordering::Less {
        let keepalive = agent_compare(&client_version, NO_KEEPALIVE_CLIENT) != Ordering::Greater;
        run_mux(io.inbox, io.out, address, keepalive).await;
    } else {
        run_single(io.inbox, io.out, address, local).await;
    }
}

/// Basic and stream modes: one TCP connection at a time.
async fn run_single(mut inbox: Inbox, out: Outbox, address: String, redial: bool) {
    let mut conn = match TcpStream::connect(&address).await {
        Ok(c) => Some(split(c)),
        Err(e) => {
            out.done(format!("Unable to connect to {address}: {e}"))
                .await;
            return;
        }
    };
    let chunk = out.chunk_size();
    let mut buf = BytesMut::with_capacity(chunk);
    loop {
        let reading = async {
            match conn.as_mut() {
                Some((r, _)) => {
                    buf.reserve(chunk);
                    r.read_buf(&mut buf).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = reading => match n {
                Ok(n) if n > 0 => {
                    if !out.send(PayloadType::Output, buf.split().freeze()).await {
                        return;
                    }
                }
                _ => {
                    conn = None;
                    if !redial {
                        out.done("").await;
                        return;
                    }
                }
            },
            input = inbox.recv() => match input {
                None | Some(ToBackend::Flag(Flag::TerminateSession)) => {
                    out.done("").await;
                    return;
                }
                Some(ToBackend::Flag(Flag::DisconnectToPort)) => conn = None,
                Some(ToBackend::Data(data)) => {
                    if conn.is_none() && redial {
                        conn = TcpStream::connect(&address).await.ok().map(split);
                    }
                    if let Some((_, w)) = conn.as_mut()
                        && w.write_all(&data).await.is_err()
                    {
                        conn = None;
                    }
                }
                Some(_) => {}
            },
        }
    }
}

fn split(c: TcpStream) -> (OwnedReadHalf, OwnedWriteHalf) {
    let _ = c.set_nodelay(true);
    c.into_split()
}

/// Mux mode: an smux server over the data channel; each stream is one TCP
/// connection to the destination.
async fn run_mux(inbox: Inbox, out: Outbox, address: String, keepalive: bool) {
    let (smux_side, agent_side) = tokio::io::duplex(256 * 1024);
    let (smux_r, smux_w) = tokio::io::split(smux_side);
    let (agent_r, agent_w) = tokio::io::split(agent_side);
    let mut config = smux::Config::default();
    if !keepalive {
        config.keepalive = None;
    }
    let session = smux::Session::server(smux_r, smux_w, config);
    let ended = tokio::select! {
        _ = feed_smux(inbox, agent_w) => String::new(),
        _ = drain_smux(&out, agent_r) => String::new(),
        _ = accept_streams(&out, &session, &address) => String::new(),
    };
    session.close();
    out.done(ended).await;
}

/// Client input → the smux server. Ends on TerminateSession or when the
/// agent lets go.
async fn feed_smux(mut inbox: Inbox, mut w: impl AsyncWrite + Unpin) {
    while let Some(input) = inbox.recv().await {
        match input {
            ToBackend::Data(data) if w.write_all(&data).await.is_err() => return,
            ToBackend::Flag(Flag::TerminateSession) => return,
            _ => {}
        }
    }
}

/// What the smux server writes → Output payloads for the client.
async fn drain_smux(io: &Outbox, mut r: impl AsyncRead + Unpin) {
    let chunk = io.chunk_size();
    let mut buf = BytesMut::with_capacity(chunk);
    loop {
        buf.reserve(chunk);
        let limit = chunk.min(buf.capacity());
        let mut take = (&mut r).take(limit as u64);
        match take.read_buf(&mut buf).await {
            Ok(n) if n > 0 => {
                if !io.send(PayloadType::Output, buf.split().freeze()).await {
                    return;
                }
            }
            _ => return,
        }
    }
}

async fn accept_streams(io: &Outbox, session: &smux::Session, address: &str) {
    while let Ok(stream) = session.accept_stream().await {
        match TcpStream::connect(address).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                tokio::spawn(async move {
                    let mut stream = stream;
                    let mut tcp = tcp;
                    let _ = tokio::io::copy_bidirectional(&mut stream, &mut tcp).await;
                });
            }
            Err(e) => {
                tracing::info!(address, error = %e, "sim: port forward destination refused");
                let flag = Bytes::copy_from_slice(&Flag::ConnectToPortError.to_payload());
                if !io.send(PayloadType::Flag, flag).await {
                    return;
                }
                drop(stream);
            }
        }
    }
}
