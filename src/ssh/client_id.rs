//! The client's SSH identification line (`SSH-2.0-OpenSSH_9.2p1 …`),
//! noted as russh reads it off the connection, and what the gateway
//! knows about clients by it.
//!
//! One thing so far: paramiko sends a new `ssh-userauth` service request
//! before every authentication method (so after the public key's partial
//! success, before keyboard-interactive). OpenSSH's sshd accepts that;
//! russh ignores it, so paramiko waits for an answer that never comes and
//! gives up with "Authentication timeout". Such a client cannot answer the
//! reason prompt, so for it the key alone completes authentication and
//! the reason must come in the environment (`SSMGATE_REASON`), which is
//! checked, as for every client, when a channel opens: nothing is granted
//! without a reason that is required.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The longest identification line kept (RFC 4253 allows 255 bytes).
const MAX_LINE: usize = 255;

/// Clients (by identification prefix) that re-send the service request
/// and so cannot take a second authentication step with russh.
const SINGLE_STEP_CLIENTS: &[&str] = &["SSH-2.0-paramiko_"];

/// The identification line, once seen.
#[derive(Debug, Clone, Default)]
pub struct ClientId(Arc<OnceLock<String>>);

impl ClientId {
    /// The line without its CR LF, if the client has sent it.
    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }

    /// Whether this client cannot answer a keyboard-interactive prompt
    /// after its key was accepted.
    pub fn single_step_only(&self) -> bool {
        self.get()
            .is_some_and(|id| SINGLE_STEP_CLIENTS.iter().any(|p| id.starts_with(p)))
    }
}

/// A connection that notes the client's identification line as it is
/// read, and is otherwise the connection itself.
pub struct IdTap<S> {
    inner: S,
    id: ClientId,
    line: Vec<u8>,
    done: bool,
}

impl<S> IdTap<S> {
    /// Wraps `inner`; the line lands in `id`.
    pub fn new(inner: S, id: ClientId) -> Self {
        Self {
            inner,
            id,
            line: Vec::new(),
            done: false,
        }
    }

    fn note(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' || self.line.len() >= MAX_LINE {
                let text = String::from_utf8_lossy(&self.line);
                let text = text.trim_end_matches('\r');
                let _ = self.id.0.set(crate::untrusted::bounded(text));
                self.done = true;
                self.line = Vec::new();
                return;
            }
            self.line.push(b);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdTap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if !self.done
            && let Some(new) = buf.filled().get(before..)
            && !new.is_empty()
        {
            let new = new.to_vec();
            self.note(&new);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdTap<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn id_of(input: &[u8], chunk: usize) -> (ClientId, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(64);
        let id = ClientId::default();
        let mut tap = IdTap::new(server, id.clone());
        let data = input.to_vec();
        let writer = tokio::spawn(async move {
            for part in data.chunks(chunk) {
                tokio::io::AsyncWriteExt::write_all(&mut client, part)
                    .await
                    .expect("write");
            }
        });
        let mut read = Vec::new();
        let mut buf = [0u8; 7];
        while read.len() < input.len() {
            let n = tap.read(&mut buf).await.expect("read");
            read.extend_from_slice(&buf[..n]);
        }
        writer.await.expect("writer");
        (id, read)
    }

    #[tokio::test]
    async fn notes_the_line_and_passes_every_byte_through() {
        let input = b"SSH-2.0-paramiko_5.1.0\r\n\x00\x00\x01\x0c binary";
        for chunk in [1, 3, 64] {
            let (id, read) = id_of(input, chunk).await;
            assert_eq!(read, input);
            assert_eq!(id.get(), Some("SSH-2.0-paramiko_5.1.0"));
            assert!(id.single_step_only());
        }
        let (id, _) = id_of(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", 5).await;
        assert_eq!(id.get(), Some("SSH-2.0-OpenSSH_9.2p1 Debian-2"));
        assert!(!id.single_step_only());
    }

    #[tokio::test]
    async fn an_endless_line_is_cut_and_control_characters_escaped() {
        let mut input = b"SSH-2.0-x\x1b[31m".to_vec();
        input.extend(std::iter::repeat_n(b'a', 1000));
        let (id, read) = id_of(&input, 100).await;
        assert_eq!(read, input);
        let seen = id.get().expect("noted");
        assert!(!seen.contains('\x1b'), "{seen}");
        assert!(seen.len() <= 4 * MAX_LINE, "{}", seen.len());
    }
}
