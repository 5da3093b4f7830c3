//! Unit tests of the whole parser, driven through the public API with
//! packets built by a small encoder ([`B`]) and fed in arbitrary chunks
//! ([`Script`]); plus a deterministic xorshift RNG for the robustness tests.

mod files;
mod ops;
mod robustness;
mod transfer;

use sha2::{Digest, Sha256};

use crate::wire::kind;
use crate::{Direction, Limits, SftpAudit, SftpEvent, Status};

/// Packet builder: `req(kind, id).str(b"path").u32(1).packet()`.
#[derive(Debug, Default, Clone)]
pub(crate) struct B(Vec<u8>);

impl B {
    pub fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn str(self, s: &[u8]) -> Self {
        let mut b = self.u32(s.len() as u32);
        b.0.extend_from_slice(s);
        b
    }
    /// An ATTRS with no attribute.
    pub fn no_attrs(self) -> Self {
        self.u32(0)
    }
    /// Length prefix + body.
    pub fn packet(self) -> Vec<u8> {
        let mut out = (self.0.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&self.0);
        out
    }
}

/// A packet with a type and a request id.
pub(crate) fn req(k: u8, id: u32) -> B {
    B::default().u8(k).u32(id)
}

pub(crate) fn init() -> Vec<u8> {
    B::default().u8(kind::INIT).u32(3).packet()
}

pub(crate) fn version(v: u32, exts: &[&str]) -> Vec<u8> {
    let mut b = B::default().u8(kind::VERSION).u32(v);
    for e in exts {
        b = b.str(e.as_bytes()).str(b"1");
    }
    b.packet()
}

pub(crate) fn open(id: u32, path: &[u8], pflags: u32) -> Vec<u8> {
    req(kind::OPEN, id)
        .str(path)
        .u32(pflags)
        .no_attrs()
        .packet()
}
pub(crate) fn handle(id: u32, h: &[u8]) -> Vec<u8> {
    req(kind::HANDLE, id).str(h).packet()
}
pub(crate) fn close(id: u32, h: &[u8]) -> Vec<u8> {
    req(kind::CLOSE, id).str(h).packet()
}
pub(crate) fn read(id: u32, h: &[u8], offset: u64, len: u32) -> Vec<u8> {
    req(kind::READ, id).str(h).u64(offset).u32(len).packet()
}
pub(crate) fn data(id: u32, d: &[u8]) -> Vec<u8> {
    req(kind::DATA, id).str(d).packet()
}
pub(crate) fn write(id: u32, h: &[u8], offset: u64, d: &[u8]) -> Vec<u8> {
    req(kind::WRITE, id).str(h).u64(offset).str(d).packet()
}
pub(crate) fn status(id: u32, code: u32, msg: &str) -> Vec<u8> {
    req(kind::STATUS, id)
        .u32(code)
        .str(msg.as_bytes())
        .str(b"")
        .packet()
}
pub(crate) fn ok(id: u32) -> Vec<u8> {
    status(id, 0, "")
}
pub(crate) fn path_req(k: u8, id: u32, path: &[u8]) -> Vec<u8> {
    req(k, id).str(path).packet()
}
pub(crate) fn ext(id: u32, name: &str) -> B {
    req(kind::EXTENDED, id).str(name.as_bytes())
}

pub(crate) const READ: u32 = 0x01;
pub(crate) const WRITE: u32 = 0x02;
pub(crate) const CREAT: u32 = 0x08;
pub(crate) const TRUNC: u32 = 0x10;

pub(crate) fn sha_hex(d: &[u8]) -> String {
    hex::encode(Sha256::digest(d))
}

/// A recorded session: packets in the order they crossed the gateway.
#[derive(Debug, Default, Clone)]
pub(crate) struct Script(pub Vec<(Direction, Vec<u8>)>);

impl Script {
    pub fn c(&mut self, p: Vec<u8>) -> &mut Self {
        self.0.push((Direction::Client, p));
        self
    }
    pub fn s(&mut self, p: Vec<u8>) -> &mut Self {
        self.0.push((Direction::Server, p));
        self
    }
    /// The usual INIT/VERSION exchange.
    pub fn hello(&mut self) -> &mut Self {
        self.c(init())
            .s(version(3, &["posix-rename@openssh.com", "copy-data"]))
    }

    /// Feeds each step whole, then finishes.
    pub fn run(&self) -> Vec<SftpEvent> {
        self.run_with(Limits::default(), |_| usize::MAX)
    }

    /// Feeds each step in chunks of `chunk(step_len)` bytes (at least 1),
    /// then finishes.
    pub fn run_with(
        &self,
        limits: Limits,
        mut chunk: impl FnMut(usize) -> usize,
    ) -> Vec<SftpEvent> {
        let mut a = SftpAudit::with_limits(limits);
        let mut out = Vec::new();
        for (dir, bytes) in &self.0 {
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let n = chunk(rest.len()).clamp(1, rest.len());
                let (head, tail) = rest.split_at(n);
                out.extend(match dir {
                    Direction::Client => a.client_bytes(head),
                    Direction::Server => a.server_bytes(head),
                });
                rest = tail;
            }
        }
        out.extend(a.finish());
        out
    }
}

/// Events other than Version.
pub(crate) fn without_version(ev: Vec<SftpEvent>) -> Vec<SftpEvent> {
    ev.into_iter()
        .filter(|e| !matches!(e, SftpEvent::Version { .. }))
        .collect()
}

/// The Close events.
pub(crate) fn closes(ev: &[SftpEvent]) -> Vec<&SftpEvent> {
    ev.iter()
        .filter(|e| matches!(e, SftpEvent::Close { .. }))
        .collect()
}

/// The fields of a close event, borrowed (so tests can destructure just
/// what they check).
pub(crate) struct Closed<'a> {
    pub path: &'a String,
    pub read_bytes: &'a u64,
    pub written_bytes: &'a u64,
    pub read_sha256: &'a Option<String>,
    pub written_sha256: &'a Option<String>,
}

/// `ev` as a close event; panics on any other event.
pub(crate) fn closed(ev: &SftpEvent) -> Closed<'_> {
    let SftpEvent::Close {
        path,
        read_bytes,
        written_bytes,
        read_sha256,
        written_sha256,
        ..
    } = ev
    else {
        panic!("not a close: {ev:?}")
    };
    Closed {
        path,
        read_bytes,
        written_bytes,
        read_sha256,
        written_sha256,
    }
}

pub(crate) fn st(code: u32) -> Status {
    Status::new(code, None)
}

/// Deterministic xorshift64* generator.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}
