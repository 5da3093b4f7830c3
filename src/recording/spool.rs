//! The spool: a local append-only file of [`Op`]s that could not be written
//! to the store (it was down or too slow), replayed in order once it
//! answers again. It survives a gateway restart: a non-empty spool found at
//! start is replayed first.
//!
//! File layout: the 8-byte magic `SSMGSPL1`, then frames
//! `len:u32be body checksum:8` where the checksum is the first 8 bytes of
//! SHA-256(body) and the body is [`Op::encode`]. A frame cut short by a
//! crash (torn tail) is dropped at open; a frame that fails its checksum
//! stops the scan there, and the file is first copied aside
//! (`*.corrupt-<unix time>`) so nothing is silently discarded.
//!
//! One process owns a spool: the file is locked (`flock`) while open.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::op::{Op, OpDecodeError};

const MAGIC: &[u8; 8] = b"SSMGSPL1";
const HEADER: u64 = MAGIC.len() as u64;
/// The largest frame accepted when reading (chunks are far smaller).
const MAX_FRAME: u32 = 64 << 20;
/// The spool file's name inside the spool directory.
pub const FILE_NAME: &str = "recording.spool";

/// Why the spool could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "spool {path} is in use by another ssmgate process (each replica needs its own [recording] spool_dir)"
    )]
    Locked { path: PathBuf },
    #[error("spool {path} is not an ssmgate spool file")]
    NotASpool { path: PathBuf },
    #[error("spool {path}: frame at byte {at} is unreadable: {why}")]
    Corrupt { path: PathBuf, at: u64, why: String },
}

/// An open, locked spool file.
pub struct Spool {
    path: PathBuf,
    file: Arc<File>,
    /// Where the next frame to replay starts.
    read_pos: u64,
    /// The end of the last complete frame.
    write_pos: u64,
    /// Frames between read_pos and write_pos.
    frames: u64,
    /// Where the frame after the one [`Spool::peek`] read starts.
    peeked_next: Option<u64>,
    /// When the spool last went from empty to not empty (for a spool left
    /// by an earlier run: when it was opened): no waiting write is older.
    pending_since: Option<std::time::SystemTime>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("path", &self.path)
            .field("read_pos", &self.read_pos)
            .field("write_pos", &self.write_pos)
            .field("frames", &self.frames)
            .finish()
    }
}

impl Spool {
    /// Opens (creating) the spool in `dir` and checks what it holds.
    pub async fn open(dir: &Path) -> Result<Spool, SpoolError> {
        let dir = dir.to_owned();
        blocking(move || open_blocking(&dir)).await
    }

    /// The spool file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when nothing waits to be replayed.
    pub fn is_empty(&self) -> bool {
        self.frames == 0
    }

    /// How many ops wait to be replayed.
    pub fn pending_ops(&self) -> u64 {
        self.frames
    }

    /// How many bytes of ops wait to be replayed.
    pub fn pending_bytes(&self) -> u64 {
        self.write_pos - self.read_pos
    }

    /// When the oldest waiting write was spooled, at the latest; `None`
    /// when empty.
    pub fn pending_since(&self) -> Option<std::time::SystemTime> {
        self.pending_since
    }

    /// Appends an op (written to the OS, not yet synced: see [`Spool::sync`]).
    pub async fn push(&mut self, op: &Op) -> Result<(), SpoolError> {
        let body = op.encode();
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        let mut frame = Vec::with_capacity(body.len() + 12);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&body);
        frame.extend_from_slice(&checksum(&body));
        let (file, at, path) = (self.file.clone(), self.write_pos, self.path.clone());
        let n = frame.len() as u64;
        blocking(move || file.write_all_at(&frame, at).map_err(|e| io(&path, e))).await?;
        self.write_pos += n;
        self.frames += 1;
        self.pending_since
            .get_or_insert_with(std::time::SystemTime::now);
        Ok(())
    }

    /// Makes the appended frames durable (fsync).
    pub async fn sync(&self) -> Result<(), SpoolError> {
        let (file, path) = (self.file.clone(), self.path.clone());
        blocking(move || file.sync_data().map_err(|e| io(&path, e))).await
    }

    /// The next op to replay, without consuming it; `None` when empty.
    pub async fn peek(&mut self) -> Result<Option<Op>, SpoolError> {
        if self.is_empty() {
            return Ok(None);
        }
        let (file, at, path) = (self.file.clone(), self.read_pos, self.path.clone());
        let (body, next) = blocking(move || read_frame(&file, at, &path)).await?;
        self.peeked_next = Some(next);
        Op::decode(&body)
            .map(Some)
            .map_err(|e: OpDecodeError| SpoolError::Corrupt {
                path: self.path.clone(),
                at: self.read_pos,
                why: e.to_string(),
            })
    }

    /// Consumes the op [`Spool::peek`] returned; once everything is
    /// consumed the file is emptied.
    pub async fn pop(&mut self) -> Result<(), SpoolError> {
        if self.is_empty() {
            return Ok(());
        }
        let next = match self.peeked_next.take() {
            Some(next) => next,
            None => {
                let (file, at, path) = (self.file.clone(), self.read_pos, self.path.clone());
                blocking(move || read_frame(&file, at, &path)).await?.1
            }
        };
        self.read_pos = next;
        self.frames -= 1;
        if self.frames == 0 {
            let (file, path) = (self.file.clone(), self.path.clone());
            blocking(move || {
                file.set_len(HEADER)
                    .and_then(|()| file.sync_data())
                    .map_err(|e| io(&path, e))
            })
            .await?;
            self.read_pos = HEADER;
            self.write_pos = HEADER;
            self.pending_since = None;
        }
        Ok(())
    }
}

fn open_blocking(dir: &Path) -> Result<Spool, SpoolError> {
    // Owner-only: the spool holds what users typed.
    crate::private_files::ensure_dir(dir).map_err(|e| io(dir, e))?;
    let path = dir.join(FILE_NAME);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(crate::private_files::FILE_MODE)
        .open(&path)
        .map_err(|e| io(&path, e))?;
    if crate::private_files::wide_bits(&path).is_some() {
        tracing::warn!(path = %path.display(), "the spool file is accessible to other users; chmod it 0600");
    }
    if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        return Err(SpoolError::Locked { path });
    }
    let len = file.metadata().map_err(|e| io(&path, e))?.len();
    if len == 0 {
        file.write_all_at(MAGIC, 0).map_err(|e| io(&path, e))?;
    } else {
        let mut magic = [0u8; 8];
        if len < HEADER || file.read_exact_at(&mut magic, 0).is_err() || &magic != MAGIC {
            return Err(SpoolError::NotASpool { path });
        }
    }
    // Find the end of the last good frame.
    let mut pos = HEADER;
    let mut frames = 0u64;
    let end = len.max(HEADER);
    while pos < end {
        match read_frame(&file, pos, &path) {
            Ok((_, next)) => {
                pos = next;
                frames += 1;
            }
            Err(e) => {
                let torn = matches!(&e, SpoolError::Io { source, .. } if source.kind() == std::io::ErrorKind::UnexpectedEof);
                if !torn {
                    let aside = path.with_extension(format!("spool.corrupt-{}", unix_now()));
                    std::fs::copy(&path, &aside).map_err(|e| io(&aside, e))?;
                    tracing::error!(spool = %path.display(), at = pos, error = %e, copy = %aside.display(),
                        "spool damaged: replaying the frames before the damage; the whole file was copied aside");
                } else {
                    tracing::warn!(spool = %path.display(), at = pos, "dropping an incomplete frame at the end of the spool (cut short by a crash)");
                }
                file.set_len(pos).map_err(|e| io(&path, e))?;
                break;
            }
        }
    }
    if frames > 0 {
        tracing::warn!(spool = %path.display(), ops = frames, "the spool holds recording writes from before; they will be replayed");
    }
    Ok(Spool {
        path,
        file: Arc::new(file),
        read_pos: HEADER,
        write_pos: pos,
        frames,
        peeked_next: None,
        pending_since: (frames > 0).then(std::time::SystemTime::now),
    })
}

/// Reads the frame at `at`: its body and where the next frame starts.
fn read_frame(file: &File, at: u64, path: &Path) -> Result<(Vec<u8>, u64), SpoolError> {
    let mut len = [0u8; 4];
    file.read_exact_at(&mut len, at).map_err(|e| io(path, e))?;
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME {
        return Err(SpoolError::Corrupt {
            path: path.to_owned(),
            at,
            why: format!("frame length {len} is too large"),
        });
    }
    let mut body = vec![0u8; len as usize];
    file.read_exact_at(&mut body, at + 4)
        .map_err(|e| io(path, e))?;
    let mut sum = [0u8; 8];
    file.read_exact_at(&mut sum, at + 4 + u64::from(len))
        .map_err(|e| io(path, e))?;
    if sum != checksum(&body) {
        return Err(SpoolError::Corrupt {
            path: path.to_owned(),
            at,
            why: "checksum mismatch".into(),
        });
    }
    Ok((body, at + 12 + u64::from(len)))
}

fn checksum(body: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(body);
    let mut out = [0u8; 8];
    out.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    out
}

fn io(path: &Path, source: std::io::Error) -> SpoolError {
    SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs file I/O off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SpoolError> + Send + 'static,
) -> Result<T, SpoolError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(SpoolError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(e),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::now;
    use crate::recording::records::{AuditEvent, AuditKind};
    use uuid::Uuid;

    fn audit(n: u32) -> Op {
        Op::Audit(AuditEvent {
            id: Uuid::new_v4(),
            at: now(),
            kind: AuditKind::Admin,
            user: None,
            session_id: None,
            source_ip: None,
            detail: format!(r#"{{"n":{n}}}"#),
            link: None,
        })
    }

    #[tokio::test]
    async fn fifo_survives_reopen_and_empties() {
        let dir = tempfile::tempdir().unwrap();
        let ops: Vec<Op> = (0..5).map(audit).collect();
        {
            let mut s = Spool::open(dir.path()).await.unwrap();
            for op in &ops {
                s.push(op).await.unwrap();
            }
            s.sync().await.unwrap();
            assert_eq!(s.peek().await.unwrap().as_ref(), Some(&ops[0]));
            s.pop().await.unwrap();
        }
        let mut s = Spool::open(dir.path()).await.unwrap();
        // Reopened: everything not consumed in this process is replayed
        // (the pop above was not durable progress; ops are idempotent).
        assert_eq!(s.pending_ops(), 5);
        for op in &ops {
            assert_eq!(s.peek().await.unwrap().as_ref(), Some(op));
            s.pop().await.unwrap();
        }
        assert!(s.is_empty());
        assert_eq!(s.peek().await.unwrap(), None);
        let len = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap().len();
        assert_eq!(len, HEADER);
    }

    #[tokio::test]
    async fn second_opener_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Spool::open(dir.path()).await.unwrap();
        let err = Spool::open(dir.path()).await.unwrap_err();
        assert!(matches!(err, SpoolError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("another ssmgate process"));
    }

    #[tokio::test]
    async fn torn_tail_is_dropped_and_damage_copied_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        {
            let mut s = Spool::open(dir.path()).await.unwrap();
            for n in 0..3 {
                s.push(&audit(n)).await.unwrap();
            }
        }
        let full = std::fs::read(&path).unwrap();
        // Cut the last frame short.
        std::fs::write(&path, &full[..full.len() - 5]).unwrap();
        {
            let s = Spool::open(dir.path()).await.unwrap();
            assert_eq!(s.pending_ops(), 2);
        }
        // Damage the second frame's body.
        let mut bytes = std::fs::read(&path).unwrap();
        let second = bytes.len() - 20;
        bytes[second] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let s = Spool::open(dir.path()).await.unwrap();
        assert_eq!(s.pending_ops(), 1);
        let copies = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("corrupt")
            })
            .count();
        assert_eq!(copies, 1);
    }

    #[tokio::test]
    async fn foreign_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"hello world").unwrap();
        let err = Spool::open(dir.path()).await.unwrap_err();
        assert!(matches!(err, SpoolError::NotASpool { .. }), "{err}");
    }
}
