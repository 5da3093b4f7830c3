//! Session-level tests over in-memory duplex pipes: exact wire bytes, echo and
//! half-close, bulk transfer over a transport cut into random small pieces,
//! backpressure, protocol errors, transport EOF, close and keepalive.

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf, ReadHalf, WriteHalf,
    duplex, split,
};

use super::*;

const WAIT: Duration = Duration::from_secs(5);

/// Cuts every read and write into pseudo-random pieces of 1..=1500 bytes.
struct Choppy<T> {
    inner: T,
    rng: u64,
}

impl<T> Choppy<T> {
    fn new(inner: T, seed: u64) -> Self {
        Self {
            inner,
            rng: seed | 1,
        }
    }

    fn piece(&mut self) -> usize {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        1 + (self.rng % 1500) as usize
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Choppy<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let n = buf.len().min(self.piece());
        Pin::new(&mut self.inner).poll_write(cx, &buf[..n])
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Choppy<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = buf.remaining().min(self.piece());
        let mut sub = ReadBuf::new(buf.initialize_unfilled_to(n));
        let res = Pin::new(&mut self.inner).poll_read(cx, &mut sub);
        let filled = sub.filled().len();
        buf.advance(filled);
        res
    }
}

fn quiet() -> Config {
    Config {
        keepalive: None,
        ..Config::default()
    }
}

/// A client and a server session joined by an in-memory pipe.
fn pair(client_cfg: Config, server_cfg: Config, choppy: bool) -> (Session, Session) {
    let (a, b) = duplex(64 * 1024);
    let (ra, wa) = split(a);
    let (rb, wb) = split(b);
    if choppy {
        (
            Session::client(Choppy::new(ra, 1), Choppy::new(wa, 2), client_cfg),
            Session::server(Choppy::new(rb, 3), Choppy::new(wb, 4), server_cfg),
        )
    } else {
        (
            Session::client(ra, wa, client_cfg),
            Session::server(rb, wb, server_cfg),
        )
    }
}

/// A session of the given role facing a raw byte pipe we drive by hand.
fn raw_peer(
    client: bool,
    config: Config,
) -> (Session, ReadHalf<DuplexStream>, WriteHalf<DuplexStream>) {
    let (a, b) = duplex(64 * 1024);
    let (ra, wa) = split(a);
    let session = if client {
        Session::client(ra, wa, config)
    } else {
        Session::server(ra, wa, config)
    };
    let (rb, wb) = split(b);
    (session, rb, wb)
}

async fn read_n<R: AsyncRead + Unpin>(r: &mut R, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(WAIT, r.read_exact(&mut buf))
        .await
        .expect("timed out")
        .expect("read");
    buf
}

#[tokio::test]
async fn client_wire_bytes() {
    let (client, mut raw_r, _raw_w) = raw_peer(true, quiet());
    let mut s3 = client.open_stream().await.unwrap();
    assert_eq!(s3.id(), 3);
    assert_eq!(read_n(&mut raw_r, 8).await, [1, 0, 0, 0, 3, 0, 0, 0]);
    let mut s5 = client.open_stream().await.unwrap();
    assert_eq!(s5.id(), 5);
    assert_eq!(read_n(&mut raw_r, 8).await, [1, 0, 0, 0, 5, 0, 0, 0]);
    s3.write_all(b"hi").await.unwrap();
    s3.flush().await.unwrap();
    assert_eq!(
        read_n(&mut raw_r, 10).await,
        [1, 2, 2, 0, 3, 0, 0, 0, 0x68, 0x69]
    );
    s5.shutdown().await.unwrap();
    assert_eq!(read_n(&mut raw_r, 8).await, [1, 1, 0, 0, 5, 0, 0, 0]);
    drop(s3);
    assert_eq!(read_n(&mut raw_r, 8).await, [1, 1, 0, 0, 3, 0, 0, 0]);
    // s5 already sent FIN: dropping it sends nothing more.
    drop(s5);
    let s7 = client.open_stream().await.unwrap();
    assert_eq!(s7.id(), 7);
    assert_eq!(read_n(&mut raw_r, 8).await, [1, 0, 0, 0, 7, 0, 0, 0]);
    assert_eq!(client.stats().streams, 1);
}

#[tokio::test]
async fn large_write_is_split_into_max_frames() {
    let config = Config {
        max_frame_size: 1000,
        ..quiet()
    };
    let (client, mut raw_r, _raw_w) = raw_peer(true, config);
    let mut s = client.open_stream().await.unwrap();
    let data: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
    s.write_all(&data).await.unwrap();
    s.flush().await.unwrap();
    read_n(&mut raw_r, 8).await; // SYN
    let mut got = Vec::new();
    for expect in [1000usize, 1000, 500] {
        let header = read_n(&mut raw_r, 8).await;
        assert_eq!(&header[..2], &[1, 2]);
        assert_eq!(
            usize::from(u16::from_le_bytes([header[2], header[3]])),
            expect
        );
        assert_eq!(&header[4..], &[3, 0, 0, 0]);
        got.extend(read_n(&mut raw_r, expect).await);
    }
    assert_eq!(got, data);
}

#[tokio::test]
async fn server_handles_incoming_frames_byte_by_byte() {
    let (server, mut raw_r, mut raw_w) = raw_peer(false, quiet());
    let mut wire = Vec::new();
    wire.extend([1, 0, 0, 0, 3, 0, 0, 0]); // SYN 3
    wire.extend([1, 0, 0, 0, 3, 0, 0, 0]); // duplicate SYN 3: ignored
    wire.extend([1, 2, 2, 0, 99, 0, 0, 0, b'z', b'z']); // PSH to unknown 99
    wire.extend([1, 3, 0, 0, 0, 0, 0, 0]); // NOP
    wire.extend([1, 2, 3, 0, 3, 0, 0, 0, b'a', b'b', b'c']); // PSH 3
    wire.extend([1, 1, 0, 0, 3, 0, 0, 0]); // FIN 3
    for b in wire {
        raw_w.write_all(&[b]).await.unwrap();
    }
    let mut s = server.accept_stream().await.unwrap();
    assert_eq!(s.id(), 3);
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"abc");
    let second = tokio::time::timeout(Duration::from_millis(100), server.accept_stream()).await;
    assert!(second.is_err(), "duplicate SYN must not yield a stream");
    // The server opens even ids starting at 2; writing after the peer's FIN
    // still works (half-close).
    let _s2 = server.open_stream().await.unwrap();
    assert_eq!(read_n(&mut raw_r, 8).await, [1, 0, 0, 0, 2, 0, 0, 0]);
    s.write_all(b"ok").await.unwrap();
    s.flush().await.unwrap();
    assert_eq!(
        read_n(&mut raw_r, 10).await,
        [1, 2, 2, 0, 3, 0, 0, 0, b'o', b'k']
    );
    assert!(!server.is_closed());
}

#[tokio::test]
async fn echo_and_half_close() {
    let (client, server) = pair(quiet(), quiet(), false);
    let mut c = client.open_stream().await.unwrap();
    c.write_all(b"ping").await.unwrap();
    let mut s = server.accept_stream().await.unwrap();
    assert_eq!(s.id(), c.id());
    assert_eq!(read_n(&mut s, 4).await, b"ping");
    s.write_all(b"pong").await.unwrap();
    assert_eq!(read_n(&mut c, 4).await, b"pong");

    // Client half-closes: the server reads EOF but can still send.
    c.shutdown().await.unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    s.write_all(b"after").await.unwrap();
    assert_eq!(read_n(&mut c, 5).await, b"after");
    assert!(c.write_all(b"x").await.is_err(), "write after shutdown");
    s.shutdown().await.unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());

    // Server-opened stream in the other direction.
    let mut s2 = server.open_stream().await.unwrap();
    assert_eq!(s2.id(), 2);
    s2.write_all(b"from server").await.unwrap();
    let mut c2 = client.accept_stream().await.unwrap();
    assert_eq!(c2.id(), 2);
    assert_eq!(read_n(&mut c2, 11).await, b"from server");
    c2.write_all(b"back").await.unwrap();
    assert_eq!(read_n(&mut s2, 4).await, b"back");

    drop((c, s, c2, s2));
    assert_eq!(client.stats().streams, 0);
    assert_eq!(server.stats().streams, 0);
    assert!(!client.is_closed() && !server.is_closed());
}

/// Sends `total` bytes of random data and reads the peer's data to EOF
/// concurrently; returns (sha of sent, sha of received, bytes received).
async fn pump(stream: Stream, total: usize) -> (Vec<u8>, Vec<u8>, usize) {
    let (mut r, mut w) = split(stream);
    let send = async move {
        let mut block = vec![0u8; 1 << 20];
        rand::rng().fill_bytes(&mut block);
        let mut sha = Sha256::new();
        let mut sent = 0usize;
        let mut round = 0u64;
        while sent < total {
            block[..8].copy_from_slice(&round.to_le_bytes());
            round += 1;
            let n = block.len().min(total - sent);
            w.write_all(&block[..n]).await.unwrap();
            sha.update(&block[..n]);
            sent += n;
        }
        w.shutdown().await.unwrap();
        sha.finalize().to_vec()
    };
    let recv = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut sha = Sha256::new();
        let mut received = 0;
        loop {
            let n = r.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            received += n;
            sha.update(&buf[..n]);
        }
        (sha.finalize().to_vec(), received)
    };
    let (sent, (recv, received)) = tokio::join!(send, recv);
    (sent, recv, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_streams_over_choppy_transport() {
    const TOTAL: usize = 16 << 20;
    let (client, server) = pair(quiet(), quiet(), true);
    let acceptor = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            for _ in 0..4 {
                let s = server.accept_stream().await.unwrap();
                let id = s.id();
                tasks.push((id, tokio::spawn(pump(s, TOTAL))));
            }
            let mut out = HashMap::new();
            for (id, t) in tasks {
                out.insert(id, t.await.unwrap());
            }
            out
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = client.open_stream().await.unwrap();
        let id = s.id();
        tasks.push((id, tokio::spawn(pump(s, TOTAL))));
    }
    let mut client_side = HashMap::new();
    for (id, t) in tasks {
        client_side.insert(id, t.await.unwrap());
    }
    let server_side = acceptor.await.unwrap();
    assert_eq!(client_side.len(), 4);
    for (id, (c_sent, c_recv, c_count)) in &client_side {
        let (s_sent, s_recv, s_count) = &server_side[id];
        assert_eq!((*c_count, *s_count), (TOTAL, TOTAL));
        assert_eq!(c_sent, s_recv, "client→server data on stream {id}");
        assert_eq!(s_sent, c_recv, "server→client data on stream {id}");
    }
    let limit = Config::default().max_receive_buffer + Config::default().max_frame_size;
    assert!(client.stats().peak_buffered <= limit);
    assert!(server.stats().peak_buffered <= limit);
    assert_eq!(client.stats().streams, 0);
    assert!(!client.is_closed() && !server.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_backpressure_is_lossless_and_bounded() {
    const MAX_RECV: usize = 256 * 1024;
    const FRAME: usize = 8 * 1024;
    let ka = Keepalive {
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(300),
    };
    let config = Config {
        keepalive: Some(ka),
        max_frame_size: FRAME,
        max_receive_buffer: MAX_RECV,
        ..Config::default()
    };
    let (client, server) = pair(config.clone(), config, false);
    let mut slow = client.open_stream().await.unwrap();
    let mut fast = client.open_stream().await.unwrap();
    let slow_data: Vec<u8> = (0..4u32 << 20).map(|i| (i * 7 % 253) as u8).collect();
    let slow_sha = Sha256::digest(&slow_data).to_vec();
    let writer = tokio::spawn(async move {
        slow.write_all(&slow_data).await.unwrap();
        slow.shutdown().await.unwrap();
        slow
    });
    let mut s_slow = server.accept_stream().await.unwrap();
    let mut s_fast = server.accept_stream().await.unwrap();
    // Nobody reads the slow stream for longer than the keepalive timeout.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let stats = server.stats();
    assert!(
        stats.buffered >= MAX_RECV / 2,
        "budget should be used: {stats:?}"
    );
    assert!(stats.buffered <= MAX_RECV + FRAME, "unbounded: {stats:?}");
    assert!(!writer.is_finished(), "the writer must be held back");
    assert!(client.stats().queued <= session::WRITE_QUEUE_LIMIT + FRAME + 64);
    assert!(
        !server.is_closed(),
        "a paused reader is not a keepalive failure"
    );

    // The other stream shares the budget (v1 has no per-stream window): its
    // data gets through once the slow one drains.
    let fast_writer = tokio::spawn(async move {
        fast.write_all(b"fast").await.unwrap();
        fast
    });
    let mut got = Vec::new();
    let mut buf = vec![0u8; 3000];
    loop {
        let n = tokio::time::timeout(WAIT, s_slow.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.len() % (512 * 1024) < 3000 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(got.len(), 4 << 20);
    assert_eq!(Sha256::digest(&got).to_vec(), slow_sha);
    assert_eq!(read_n(&mut s_fast, 4).await, b"fast");
    tokio::time::timeout(WAIT, writer).await.unwrap().unwrap();
    tokio::time::timeout(WAIT, fast_writer)
        .await
        .unwrap()
        .unwrap();
    assert!(server.stats().peak_buffered <= MAX_RECV + FRAME);
    assert!(!server.is_closed() && !client.is_closed());
}

#[tokio::test]
async fn bad_version_ends_session_and_fails_pending_reads() {
    let (client, mut raw_r, mut raw_w) = raw_peer(true, quiet());
    let mut s = client.open_stream().await.unwrap();
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 16];
        s.read(&mut buf).await
    });
    let acceptor = {
        let client = client.clone();
        tokio::spawn(async move { client.accept_stream().await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    raw_w.write_all(&[2, 0, 0, 0, 0, 0, 0, 0]).await.unwrap();
    let reason = tokio::time::timeout(WAIT, client.closed()).await.unwrap();
    assert_eq!(reason, SmuxError::BadVersion(2));
    assert!(reason.is_protocol_error());
    assert!(client.is_closed());
    assert!(reader.await.unwrap().is_err());
    assert_eq!(
        acceptor.await.unwrap().unwrap_err(),
        SmuxError::BadVersion(2)
    );
    assert!(client.open_stream().await.is_err());
    // The session shut its transport writer: the peer sees SYN then EOF.
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, raw_r.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rest, [1, 0, 0, 0, 3, 0, 0, 0]);
}

#[tokio::test]
async fn unknown_command_ends_session() {
    let (server, _raw_r, mut raw_w) = raw_peer(false, quiet());
    raw_w.write_all(&[1, 9, 0, 0, 0, 0, 0, 0]).await.unwrap();
    let reason = tokio::time::timeout(WAIT, server.closed()).await.unwrap();
    assert_eq!(reason, SmuxError::UnknownCommand(9));
}

#[tokio::test]
async fn transport_eof_ends_session() {
    let (server, _raw_r, mut raw_w) = raw_peer(false, quiet());
    raw_w.write_all(&[1, 0, 0, 0, 3, 0, 0, 0]).await.unwrap();
    let mut s = server.accept_stream().await.unwrap();
    let reader = tokio::spawn(async move {
        let mut buf = [0u8; 16];
        s.read(&mut buf).await
    });
    raw_w.shutdown().await.unwrap();
    let reason = tokio::time::timeout(WAIT, server.closed()).await.unwrap();
    assert_eq!(reason, SmuxError::TransportEof);
    let err = reader.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted);
}

#[tokio::test]
async fn close_fails_pending_operations_and_reaches_the_peer() {
    let (client, server) = pair(quiet(), quiet(), false);
    let mut c = client.open_stream().await.unwrap();
    c.write_all(b"buffered").await.unwrap();
    let mut s = server.accept_stream().await.unwrap();
    let acceptor = {
        let client = client.clone();
        tokio::spawn(async move { client.accept_stream().await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.close();
    assert_eq!(acceptor.await.unwrap().unwrap_err(), SmuxError::Closed);
    assert_eq!(client.closed().await, SmuxError::Closed);
    let mut buf = [0u8; 8];
    assert!(c.read(&mut buf).await.is_err());
    assert!(c.write_all(b"more").await.is_err());
    // The peer sees the transport end; data that arrived is still readable.
    let reason = tokio::time::timeout(WAIT, server.closed()).await.unwrap();
    assert_eq!(reason, SmuxError::TransportEof);
    assert_eq!(read_n(&mut s, 8).await, b"buffered");
    assert!(s.read(&mut buf).await.is_err());
}

#[tokio::test]
async fn keepalive_closes_on_silent_peer() {
    let config = Config {
        keepalive: Some(Keepalive {
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(200),
        }),
        ..Config::default()
    };
    let (client, mut raw_r, _raw_w) = raw_peer(true, config);
    let start = Instant::now();
    // The session pings while it waits.
    assert_eq!(read_n(&mut raw_r, 8).await, [1, 3, 0, 0, 0, 0, 0, 0]);
    let reason = tokio::time::timeout(WAIT, client.closed()).await.unwrap();
    assert_eq!(
        reason,
        SmuxError::KeepaliveTimeout(Duration::from_millis(200))
    );
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[tokio::test]
async fn keepalive_on_both_sides_stays_up() {
    let config = Config {
        keepalive: Some(Keepalive {
            interval: Duration::from_millis(50),
            timeout: Duration::from_millis(400),
        }),
        ..Config::default()
    };
    let (client, server) = pair(config.clone(), config, true);
    // Several timeouts long, with no traffic but the pings.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(!client.is_closed() && !server.is_closed());
    let mut c = client.open_stream().await.unwrap();
    c.write_all(b"alive").await.unwrap();
    let mut s = server.accept_stream().await.unwrap();
    assert_eq!(read_n(&mut s, 5).await, b"alive");
}

#[tokio::test]
async fn works_over_real_tcp() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (connected, accepted) =
        tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let (cr, cw) = connected.unwrap().into_split();
    let (sr, sw) = accepted.unwrap().0.into_split();
    let client = Session::client(cr, cw, quiet());
    let server = Session::server(sr, sw, quiet());
    let echo = tokio::spawn(async move {
        let s = server.accept_stream().await.unwrap();
        let (mut r, mut w) = split(s);
        tokio::io::copy(&mut r, &mut w).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let c = client.open_stream().await.unwrap();
    let (mut r, mut w) = split(c);
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
    let expect = data.clone();
    let send = tokio::spawn(async move {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    tokio::time::timeout(WAIT, r.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(back, expect);
    send.await.unwrap();
    echo.await.unwrap();
}
