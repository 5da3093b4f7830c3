//! `ssmgate bench datachannel` (also `cargo bench --bench datachannel`): measures, side by side
//! in one run, the codec's cost per message and port-session throughput
//! between our client and the simulator in fast mode, against a raw TCP
//! loopback copy as the ceiling. Prints a table; ratios matter more than
//! absolute numbers on a shared machine.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use ssm_datachannel::message::{Message, MessageType, PayloadType};
use ssm_datachannel::secret::Secret;
use ssm_datachannel::{ChannelConfig, Event, SessionKind, open};
use ssm_sim::client::sdk_client;
use ssm_sim::config::SimConfig;
use ssm_sim::server::SimServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Runs the data-channel benchmark moving `mib` MiB per throughput row.
pub async fn datachannel(mib: usize) -> Result<()> {
    let bytes = mib.max(1) << 20;
    println!("ssmgate bench datachannel ({mib} MiB per transfer)\n");
    println!(
        "{:<46} {:>12} {:>10}",
        "measurement", "result", "vs ceiling"
    );
    let (enc, dec) = codec_cost(1024, 200_000)?;
    println!(
        "{:<46} {:>9.0} ns {:>10}",
        "codec encode, 1 KiB payload (incl. SHA-256)", enc, ""
    );
    println!(
        "{:<46} {:>9.0} ns {:>10}",
        "codec decode, 1 KiB payload (incl. SHA-256)", dec, ""
    );
    let ceiling = tcp_copy(bytes).await?;
    row("raw TCP loopback copy (ceiling)", ceiling, ceiling);
    for payload in [1024usize, 16 * 1024] {
        let up = port_session(bytes, payload, Direction::Upload).await?;
        row(
            &format!("port session upload, {payload} B payloads"),
            up,
            ceiling,
        );
        let down = port_session(bytes, payload, Direction::Download).await?;
        row(
            &format!("port session download, {payload} B payloads"),
            down,
            ceiling,
        );
    }
    Ok(())
}

fn row(name: &str, mb_s: f64, ceiling: f64) {
    println!(
        "{name:<46} {mb_s:>7.1} MB/s {:>9.1}%",
        100.0 * mb_s / ceiling
    );
}

/// Mean ns per encode and per decode of a message with `size` payload bytes.
pub fn codec_cost(size: usize, rounds: u32) -> Result<(f64, f64)> {
    let msg = Message::new(
        MessageType::InputStreamData,
        1,
        0,
        PayloadType::Output,
        Bytes::from(vec![0x5a; size]),
    );
    let frame = msg.encode()?;
    let start = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(msg.encode()?);
    }
    let enc = start.elapsed().as_nanos() as f64 / f64::from(rounds);
    let start = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(Message::decode(frame.clone())?);
    }
    let dec = start.elapsed().as_nanos() as f64 / f64::from(rounds);
    Ok((enc, dec))
}

/// MB/s of a plain TCP copy of `bytes` over loopback.
async fn tcp_copy(bytes: usize) -> Result<f64> {
    let (addr, done) = sink(bytes).await?;
    let mut conn = TcpStream::connect(addr).await?;
    let chunk = vec![0x42u8; 64 * 1024];
    let start = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        conn.write_all(chunk.get(..n).unwrap_or_default()).await?;
        left -= n;
    }
    done.await.context("sink ended early")?;
    Ok(mb_s(bytes, start.elapsed()))
}

#[derive(Clone, Copy)]
enum Direction {
    Upload,
    Download,
}

/// MB/s through a stream-mode port session client ↔ sim ↔ local TCP.
async fn port_session(bytes: usize, payload: usize, dir: Direction) -> Result<f64> {
    let (dest, sink_done) = match dir {
        Direction::Upload => {
            let (a, d) = sink(bytes).await?;
            (a, Some(d))
        }
        Direction::Download => (source(bytes).await?, None),
    };
    // The sim cuts its output in 1024-byte payloads in faithful mode (port
    // sessions are not paced) and in 16 KiB ones in fast mode.
    let mode = if payload <= 1024 { "faithful" } else { "fast" };
    let toml = format!(
        "mode = \"{mode}\"\n[[instances]]\nid = \"i-0000000000000b01\"\nports = {{ \"22\" = \"{dest}\" }}\n"
    );
    let config = SimConfig::from_toml_str(&toml)?;
    let sim = SimServer::start("127.0.0.1:0".parse()?, config).await?;
    let client = sdk_client(&sim.endpoint());
    let out = client
        .start_session()
        .target("i-0000000000000b01")
        .document_name("AWS-StartSSHSession")
        .parameters("portNumber", vec!["22".into()])
        .send()
        .await
        .context("StartSession")?;
    let mut cfg = ChannelConfig::new(
        out.stream_url().unwrap_or_default().to_owned(),
        Secret::new(out.token_value().unwrap_or_default()),
        out.session_id().unwrap_or_default().to_owned(),
        SessionKind::Port,
    );
    cfg.max_payload = payload;
    let (ch, mut events) = open(cfg).await?;
    loop {
        match events.recv().await {
            Some(Event::Ready(_)) => break,
            Some(Event::Closed(r)) => bail!("session closed before ready: {r:?}"),
            Some(_) => {}
            None => bail!("no events"),
        }
    }
    let start = Instant::now();
    match dir {
        Direction::Upload => {
            let drain = tokio::spawn(async move { while events.recv().await.is_some() {} });
            let block = Bytes::from(vec![0x42u8; 1 << 20]);
            for _ in 0..(bytes >> 20) {
                ch.write(block.clone()).await?;
            }
            if let Some(done) = sink_done {
                done.await.context("sink ended early")?;
            }
            drain.abort();
        }
        Direction::Download => {
            let mut got = 0usize;
            while got < bytes {
                match events.recv().await {
                    Some(Event::Output(b)) => got += b.len(),
                    Some(Event::Closed(r)) => bail!("closed after {got} bytes: {r:?}"),
                    Some(_) => {}
                    None => bail!("events ended after {got} bytes"),
                }
            }
        }
    }
    let rate = mb_s(bytes, start.elapsed());
    ch.close().await;
    sim.shutdown().await?;
    Ok(rate)
}

fn mb_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64().max(1e-9)
}

/// A TCP server that reads `bytes` from one connection, then reports.
async fn sink(bytes: usize) -> Result<(SocketAddr, oneshot::Receiver<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let Ok((mut conn, _)) = listener.accept().await else {
            return;
        };
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0usize;
        while got < bytes {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got += n,
            }
        }
        let _ = tx.send(());
    });
    Ok((addr, rx))
}

/// A TCP server that writes `bytes` to one connection.
async fn source(bytes: usize) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let Ok((mut conn, _)) = listener.accept().await else {
            return;
        };
        let chunk = vec![0x42u8; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            if conn
                .write_all(chunk.get(..n).unwrap_or_default())
                .await
                .is_err()
            {
                return;
            }
            left -= n;
        }
        // Keep the connection open until the client is done reading.
        let mut sink = [0u8; 1];
        let _ = conn.read(&mut sink).await;
    });
    Ok(addr)
}
