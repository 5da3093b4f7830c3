//! The inner SSH leg: the gateway as an SSH client of the target's sshd,
//! over the byte stream of an AWS-StartSSHSession port session. It checks
//! the host key ([`HostTrust`]), logs in as the OS user with the session's
//! certificate, opens one session channel and replays the user's requests
//! on it (pty, env, then shell, exec or subsystem).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{Certificate, PrivateKey, PublicKeyOrCertificate};
use ssm_datachannel::PortStream;

use super::hostkeys::{HostKeyError, HostTrust, Offered};
use crate::gateway::terminal::PtyRequest;
use crate::inventory::Target;
use crate::request::Kind;

/// How long the inner login may take (key exchange, host key check,
/// authentication, channel and its requests).
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the inner leg could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum InnerError {
    /// The host key is not trusted.
    #[error(transparent)]
    HostKey(#[from] HostKeyError),
    /// No SSH server answered through the port session, or it broke off
    /// before the key exchange finished.
    #[error(
        "no SSH server answered on the target's sshd port, or it broke off the key exchange ({0}); is sshd running and listening there?"
    )]
    Handshake(String),
    /// The SSH protocol failed after the key exchange.
    #[error("SSH to the target failed: {0}")]
    Ssh(String),
    /// The target's sshd refused the certificate.
    #[error(
        "the target's sshd refused the gateway's certificate for user {os_user} (does it trust the ssmgate user CA? see `ssmgate ca public-key`)"
    )]
    AuthRefused {
        /// The OS user.
        os_user: String,
    },
    /// A channel request was refused by the target.
    #[error("the target's sshd refused the {what} request")]
    Refused {
        /// Which request.
        what: &'static str,
    },
    /// Nothing happened in time.
    #[error("the target's sshd did not answer within {0:?}")]
    Timeout(Duration),
}

impl From<russh::Error> for InnerError {
    fn from(e: russh::Error) -> Self {
        InnerError::Ssh(e.to_string())
    }
}

/// The client handler: checks the host key and keeps why it failed.
pub struct Inner {
    trust: Arc<HostTrust>,
    target: Target,
    refusal: Arc<Mutex<Option<HostKeyError>>>,
}

impl client::Handler for Inner {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let offered = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => Offered::Key(key.clone()),
            PublicKeyOrCertificate::Certificate(c) => Offered::Certificate(Box::new(c.clone())),
        };
        match self.trust.check(&self.target, &offered).await {
            Ok(()) => Ok(true),
            Err(e) => {
                if let Ok(mut slot) = self.refusal.lock() {
                    *slot = Some(e);
                }
                Ok(false)
            }
        }
    }
}

/// What the inner leg needs to log in.
pub struct Login<'a> {
    /// The target (for the host key check).
    pub target: &'a Target,
    /// The OS user.
    pub os_user: &'a str,
    /// The session's key and certificate.
    pub key: PrivateKey,
    /// …
    pub cert: Certificate,
    /// The terminal, if the user asked for one.
    pub pty: Option<&'a PtyRequest>,
    /// Environment the user set that is passed on (TERM, LANG, LC_*).
    pub env: &'a [(String, String)],
    /// What to start (shell, exec or subsystem).
    pub kind: &'a Kind,
}

/// An open inner session: the connection and its one channel.
pub struct InnerSession {
    /// The connection (kept to disconnect at the end).
    pub handle: Handle<Inner>,
    /// The session channel.
    pub channel: russh::Channel<client::Msg>,
}

/// Connects over `stream`, checks the host key, logs in and starts the
/// session. Bounded by [`LOGIN_TIMEOUT`].
pub async fn open(
    trust: Arc<HostTrust>,
    stream: PortStream,
    login: Login<'_>,
) -> Result<InnerSession, InnerError> {
    tokio::time::timeout(LOGIN_TIMEOUT, open_inner(trust, stream, login))
        .await
        .map_err(|_| InnerError::Timeout(LOGIN_TIMEOUT))?
}

async fn open_inner(
    trust: Arc<HostTrust>,
    stream: PortStream,
    login: Login<'_>,
) -> Result<InnerSession, InnerError> {
    let mut config = client::Config {
        // The user's own keepalives reach the target through the relay;
        // the inner leg ends when the outer one does.
        inactivity_timeout: None,
        nodelay: true,
        ..client::Config::default()
    };
    if trust.uses_cas() {
        config.preferred.host_key_certificates = config.preferred.key.clone();
    }
    let refusal = Arc::new(Mutex::new(None));
    let handler = Inner {
        trust,
        target: login.target.clone(),
        refusal: refusal.clone(),
    };
    let mut handle = match client::connect_stream(Arc::new(config), stream, handler).await {
        Ok(h) => h,
        Err(e) => {
            let refused = refusal.lock().ok().and_then(|mut r| r.take());
            return Err(match refused {
                Some(host_key) => InnerError::HostKey(host_key),
                None => InnerError::Handshake(e.to_string()),
            });
        }
    };
    let auth = handle
        .authenticate_openssh_cert(login.os_user, Arc::new(login.key), login.cert)
        .await?;
    if !auth.success() {
        return Err(InnerError::AuthRefused {
            os_user: login.os_user.to_owned(),
        });
    }
    let mut channel = handle.channel_open_session().await?;
    if let Some(pty) = login.pty {
        let modes: Vec<(russh::Pty, u32)> = pty
            .modes
            .iter()
            .filter_map(|(op, v)| russh::Pty::from_u8(*op).map(|p| (p, *v)))
            .collect();
        channel
            .request_pty(
                true,
                &pty.term,
                pty.cols,
                pty.rows,
                pty.pix_width,
                pty.pix_height,
                &modes,
            )
            .await?;
        expect_success(&mut channel, "pty").await?;
    }
    for (name, value) in login.env {
        // sshd ignores what its AcceptEnv does not list; no reply needed.
        channel
            .set_env(false, name.as_str(), value.as_str())
            .await?;
    }
    let what = match login.kind {
        Kind::Shell => {
            channel.request_shell(true).await?;
            "shell"
        }
        Kind::Exec { command } => {
            channel.exec(true, command.as_bytes()).await?;
            "exec"
        }
        Kind::Subsystem { name } => {
            channel.request_subsystem(true, name.as_str()).await?;
            "subsystem"
        }
        Kind::Port { .. } => return Err(InnerError::Refused { what: "port" }),
    };
    expect_success(&mut channel, what).await?;
    Ok(InnerSession { handle, channel })
}

/// Waits for the reply to a request sent with want_reply.
async fn expect_success(
    channel: &mut russh::Channel<client::Msg>,
    what: &'static str,
) -> Result<(), InnerError> {
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Success) => return Ok(()),
            Some(ChannelMsg::Failure) | Some(ChannelMsg::Close) | None => {
                return Err(InnerError::Refused { what });
            }
            // Window adjustments and the like before the reply.
            Some(_) => {}
        }
    }
}
