//! The russh handler of one SSH connection: authentication callbacks (which
//! delegate every decision to [`super::auth`]) and channel callbacks, which
//! only accept or refuse and then hand each channel to its own task
//! ([`super::session_channel`], [`super::forward`]). No session work happens
//! here, so one slow SSM call never stalls the connection.
//!
//! A key or certificate alone logs in: a client cannot tell the server
//! whether it could answer a prompt (OpenSSH's `BatchMode` and Ansible
//! simply turn keyboard-interactive off, and every client tries its keys
//! first), so the reason is required where it is used, per channel
//! ([`super::reasons`]). A client that asks for keyboard-interactive
//! *before* its key (`PreferredAuthentications keyboard-interactive,publickey`)
//! is asked for the reason then, and that reason covers the connection.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::SystemTime;

use russh::keys::Certificate;
use russh::server::{
    Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Response, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet};
use tracing::Instrument;
use uuid::Uuid;

use super::auth::Rejection;
use super::context::ServerContext;
use super::forward;
use super::limits::StartupGuard;
use super::login::{Login, parse_login};
use super::session_channel::{self, Authenticated};
use super::session_limits::{LimitReached, SessionSlot};
use crate::gateway::ports::PortSessions;
use crate::gateway::record::EndCause;
use crate::recording::AuditKind;
use crate::request::{AuthMethod, PERMIT_PORT_FORWARDING, PERMIT_PTY, Reason};
use crate::untrusted::{Untrusted, bounded};

/// SSH_OPEN_ADMINISTRATIVELY_PROHIBITED.
const PROHIBITED: u32 = 1;
/// SSH_OPEN_RESOURCE_SHORTAGE.
const RESOURCE_SHORTAGE: u32 = 4;
/// How often a malformed reason is asked for again before giving up.
const REASON_TRIES: u32 = 3;
/// The keyboard-interactive prompt.
const REASON_PROMPT: &str = "Reason for access: ";

/// Per-connection state, owned by russh's connection task.
pub struct ConnectionHandler {
    ctx: Arc<ServerContext>,
    peer: SocketAddr,
    /// The login name of the first authentication request, exactly as sent.
    /// Every later request must repeat it: a different user (or `+target`)
    /// ends the connection, as OpenSSH's sshd does ("Change of username or
    /// service not allowed"). Without this, a factor proven for one user
    /// could be completed as another.
    bound_login: Option<String>,
    login: Option<Login>,
    /// The key or certificate that passed.
    first_factor: Option<AuthMethod>,
    /// The reason typed at the keyboard-interactive prompt before the key.
    reason: Option<Reason>,
    reason_tries: u32,
    /// The keyboard-interactive prompt was answered (or left empty): it is
    /// not offered again.
    prompt_done: bool,
    /// The reason typed at the prompt was refused too often: the login
    /// fails, key or not (the person asked to be asked).
    reason_refused: bool,
    user: Option<Arc<Authenticated>>,
    startup: Option<StartupGuard>,
    /// Set once authenticated; the login-grace timer reads it.
    pub authenticated: Arc<AtomicBool>,
    ports: Arc<PortSessions>,
    /// Channels of this connection now open (shells, commands, forwards).
    open_channels: Arc<AtomicUsize>,
    refused_remote_forward: bool,
    /// Why the gateway cut the connection (set by the server loop).
    pub end_cause: Arc<EndCause>,
}

impl ConnectionHandler {
    /// A handler for a new connection holding an unauthenticated slot.
    pub fn new(ctx: Arc<ServerContext>, peer: SocketAddr, startup: StartupGuard) -> Self {
        let end_cause = Arc::new(EndCause::default());
        Self {
            ctx,
            peer,
            bound_login: None,
            login: None,
            first_factor: None,
            reason: None,
            reason_tries: 0,
            prompt_done: false,
            reason_refused: false,
            user: None,
            startup: Some(startup),
            authenticated: Arc::new(AtomicBool::new(false)),
            ports: Arc::new(PortSessions::new(end_cause.clone())),
            open_channels: Arc::new(AtomicUsize::new(0)),
            refused_remote_forward: false,
            end_cause,
        }
    }

    /// Binds the connection to the first login name and parses it. A later
    /// request for another name is an error, which ends the connection.
    async fn login(&mut self, raw: &str) -> Result<Option<Login>, russh::Error> {
        match &self.bound_login {
            None => {
                self.bound_login = Some(raw.to_owned());
                self.login = match parse_login(raw) {
                    Ok(login) => Some(login),
                    Err(e) => {
                        tracing::info!(peer = %self.peer, error = %e, "refused login name");
                        None
                    }
                };
            }
            Some(bound) if bound == raw => {}
            Some(bound) => {
                let first = bound.clone();
                tracing::warn!(
                    peer = %self.peer, first = %Untrusted(&first), now = %Untrusted(raw),
                    "login name changed during authentication; disconnecting"
                );
                self.audit(
                    AuditKind::AuthFailure,
                    &self.login_user(),
                    serde_json::json!({
                        "reason": "login name changed during authentication",
                        "first_login": bounded(&first),
                        "later_login": bounded(raw),
                        "source_port": self.peer.port(),
                    }),
                )
                .await;
                return Err(russh::Error::Disconnect);
            }
        }
        Ok(self.login.clone())
    }

    /// The user part of the bound login name ("" when it was malformed).
    fn login_user(&self) -> String {
        self.login
            .as_ref()
            .map(|l| l.user.clone())
            .unwrap_or_default()
    }

    /// A key or certificate passed: the user is in (the reason is asked
    /// for per channel, see the module docs).
    fn first_factor_passed(&mut self, user: &str, method: AuthMethod) -> Auth {
        if self.reason_refused {
            tracing::info!(peer = %self.peer, user, "key refused: the reason was refused too often");
            return Auth::reject();
        }
        tracing::info!(peer = %self.peer, user, method = %method, reason_given = self.reason.is_some(), "key accepted");
        self.first_factor = Some(method);
        self.finish_auth()
    }

    /// The prompt is over (answered or skipped): the key must follow.
    fn key_next(&mut self) -> Auth {
        self.prompt_done = true;
        let auth = Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
            partial_success: true,
        };
        crate::ops::metrics::auth("keyboard-interactive", auth)
    }

    async fn refused(&self, user: &str, why: Rejection) -> Auth {
        tracing::info!(peer = %self.peer, user, reason = %why, "authentication refused");
        self.audit(
            AuditKind::AuthFailure,
            user,
            serde_json::json!({ "reason": why.to_string(), "source_port": self.peer.port() }),
        )
        .await;
        Auth::reject()
    }

    async fn audit(&self, kind: AuditKind, user: &str, detail: serde_json::Value) {
        // Boxed: the handler's futures live inside russh's per-connection
        // future, which is as large as the largest of them for as long as
        // the connection lasts (see `gateway::ports::run_forward`).
        Box::pin(self.ctx.gateway.recorder().audit(
            kind,
            Some(user),
            None,
            Some(self.peer.ip()),
            detail,
        ))
        .await;
    }

    fn finish_auth(&mut self) -> Auth {
        let (Some(login), Some(method)) = (self.login.clone(), self.first_factor.clone()) else {
            return Auth::reject();
        };
        let user = self.ctx.identities.user(&login.user).cloned();
        let Some(user) = user else {
            return Auth::reject();
        };
        self.user = Some(Arc::new(Authenticated {
            user: Arc::new(user),
            auth: method,
            target: login.target,
            reason: self.reason.clone(),
            source: self.peer,
            remote_forward_refused: false,
            client_version: None,
            end_cause: self.end_cause.clone(),
        }));
        Auth::Accept
    }

    fn prompt(instructions: String) -> Auth {
        Auth::Partial {
            name: Cow::Borrowed(""),
            instructions: Cow::Owned(instructions),
            prompts: Cow::Owned(vec![(Cow::Borrowed(REASON_PROMPT), true)]),
        }
    }

    /// A slot for one more channel, or the limit that refuses it (already
    /// written to the log and the audit; its text is for the client).
    async fn channel_slot(
        &self,
        user: &Authenticated,
        kind: &str,
    ) -> Result<SessionSlot, LimitReached> {
        match self
            .ctx
            .sessions
            .acquire(&user.user.name, &self.open_channels)
        {
            Ok(slot) => Ok(slot),
            Err(limit) => {
                crate::ops::metrics::session_refused(&limit);
                tracing::warn!(peer = %self.peer, user = %user.user.name, kind, reason = %limit, "channel refused: session limit");
                self.audit(
                    AuditKind::DecisionDeny,
                    &user.user.name,
                    serde_json::json!({
                        "action": kind,
                        "message": limit.to_string(),
                        "limit": true,
                        "source_port": self.peer.port(),
                    }),
                )
                .await;
                Err(limit)
            }
        }
    }

    fn session_user(&self) -> Option<Arc<Authenticated>> {
        let user = self.user.clone()?;
        if self.refused_remote_forward && !user.remote_forward_refused {
            let mut u = (*user).clone();
            u.remote_forward_refused = true;
            return Some(Arc::new(u));
        }
        Some(user)
    }
}

impl russh::server::Handler for ConnectionHandler {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        let Some(login) = self.login(user).await? else {
            return Ok(crate::ops::metrics::auth("publickey", Auth::reject()));
        };
        // Spare the signature when this key cannot pass anyway. russh offers
        // a certificate's inner key here, so with trusted CAs any key may
        // still pass as a certificate, checked in full once signed.
        let maybe = self
            .ctx
            .identities
            .check_key(&login.user, offer.public_key)
            .is_ok()
            || self.ctx.identities.trusts_any_ca();
        Ok(if maybe {
            Auth::Accept
        } else {
            crate::ops::metrics::auth("publickey", Auth::reject())
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let Some(login) = self.login(user).await? else {
            return Ok(Auth::reject());
        };
        let auth = match self.ctx.identities.check_key(&login.user, key.public_key) {
            Ok(method) => self.first_factor_passed(&login.user, method),
            Err(why) => self.refused(&login.user, why).await,
        };
        Ok(crate::ops::metrics::auth("publickey", auth))
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        cert: &Certificate,
    ) -> Result<Auth, Self::Error> {
        let Some(login) = self.login(user).await? else {
            return Ok(Auth::reject());
        };
        let checked = self.ctx.identities.check_certificate(
            &login.user,
            cert,
            self.peer.ip(),
            SystemTime::now(),
        );
        let auth = match checked {
            Ok(method) => self.first_factor_passed(&login.user, method),
            Err(why) => self.refused(&login.user, why).await,
        };
        Ok(crate::ops::metrics::auth("certificate", auth))
    }

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        self.login(user).await?;
        Ok(Auth::reject())
    }

    async fn auth_password(&mut self, user: &str, _password: &str) -> Result<Auth, Self::Error> {
        self.login(user).await?;
        Ok(crate::ops::metrics::auth("password", Auth::reject()))
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        // Asked before the key only (after it, the user is already in).
        if self.login(user).await?.is_none() || self.first_factor.is_some() || self.prompt_done {
            return Ok(crate::ops::metrics::auth(
                "keyboard-interactive",
                Auth::reject(),
            ));
        }
        let Some(mut response) = response else {
            return Ok(Self::prompt(format!(
                "Access needs a reason: {}.",
                self.ctx.justification.hint
            )));
        };
        let answer = response
            .next()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        if answer.trim().is_empty() {
            // No reason now: channels may still bring one (SetEnv, a
            // grant, the terminal), checked when they open.
            return Ok(self.key_next());
        }
        match self.ctx.justification.check(&answer) {
            Ok(clean) => {
                self.reason = Some(clean);
                Ok(self.key_next())
            }
            Err(rule) => {
                self.reason_tries += 1;
                if self.reason_tries >= REASON_TRIES {
                    self.prompt_done = true;
                    self.reason_refused = true;
                    tracing::info!(peer = %self.peer, "reason refused too often");
                    self.audit(
                        AuditKind::AuthFailure,
                        &self.login_user(),
                        serde_json::json!({ "reason": "reason for access refused too often", "source_port": self.peer.port() }),
                    )
                    .await;
                    return Ok(crate::ops::metrics::auth(
                        "keyboard-interactive",
                        Auth::reject(),
                    ));
                }
                Ok(Self::prompt(format!("That reason is not accepted: {rule}")))
            }
        }
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        self.startup = None;
        self.authenticated.store(true, Ordering::Relaxed);
        let version = String::from_utf8_lossy(session.remote_sshid()).into_owned();
        if let Some(user) = self.user.take() {
            let mut u = (*user).clone();
            u.client_version = Some(version.clone());
            let (method, fingerprint, key_id) = match &u.auth {
                AuthMethod::PublicKey { fingerprint } => ("publickey", fingerprint.clone(), None),
                AuthMethod::Certificate {
                    fingerprint,
                    key_id,
                    ..
                } => ("certificate", fingerprint.clone(), Some(key_id.clone())),
            };
            let detail = serde_json::json!({
                "method": method,
                "key_fingerprint": fingerprint,
                "cert_key_id": key_id,
                "client_version": version,
                "source_port": self.peer.port(),
                "target": u.target,
                "reason_given": u.reason.is_some(),
            });
            let name = u.user.name.clone();
            self.user = Some(Arc::new(u));
            self.audit(AuditKind::AuthSuccess, &name, detail).await;
        }
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(user) = self.session_user() else {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        let handle = session.handle();
        let slot = match self.channel_slot(&user, "session").await {
            Ok(slot) => slot,
            Err(limit) => {
                // Accepted only to say why on stderr: a refused open is
                // shown by OpenSSH at log level INFO only.
                reply.accept().await;
                tokio::spawn(session_channel::refuse(channel, format!("{limit}\r\n")));
                return Ok(());
            }
        };
        reply.accept().await;
        let ctx = self.ctx.clone();
        let id = Uuid::new_v4();
        tokio::spawn(
            async move {
                let _slot = slot;
                session_channel::run(ctx, user, channel, handle, id).await;
            }
            .instrument(crate::logging::session_span(id)),
        );
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        _originator: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(user) = self.session_user() else {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        if !user.auth.permits(PERMIT_PORT_FORWARDING) {
            tracing::info!(peer = %self.peer, user = %user.user.name, "forward refused: certificate lacks permit-port-forwarding");
            reply
                .reject(ChannelOpenFailure::Other {
                    code: PROHIBITED,
                    reason: "ssmgate: your certificate does not permit port forwarding (no permit-port-forwarding extension)".into(),
                })
                .await;
            return Ok(());
        }
        let slot = match self.channel_slot(&user, "direct-tcpip").await {
            Ok(slot) => slot,
            Err(limit) => {
                reply
                    .reject(ChannelOpenFailure::Other {
                        code: RESOURCE_SHORTAGE,
                        reason: limit.to_string(),
                    })
                    .await;
                return Ok(());
            }
        };
        let request = forward::Request {
            host: host.to_owned(),
            port,
        };
        let (ctx, ports) = (self.ctx.clone(), self.ports.clone());
        let id = Uuid::new_v4();
        tokio::spawn(
            async move {
                let _slot = slot;
                forward::run(ctx, user, ports, request, channel, reply, id).await;
            }
            .instrument(crate::logging::session_span(id)),
        );
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pw: u32,
        _ph: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // A certificate without permit-pty gets none, as with sshd (the
        // channel task ignores the request too).
        match &self.user {
            Some(u) if u.auth.permits(PERMIT_PTY) => session.channel_success(channel),
            _ => session.channel_failure(channel),
        }
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if session_channel::accepted_env(name) {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Accepted so that the client stays to read why it is refused: the
        // channel task writes the explanation and exits with 255.
        session.channel_success(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single: bool,
        _protocol: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        tracing::info!(peer = %self.peer, address, port = *port, "refused remote forwarding");
        self.refused_remote_forward = true;
        Ok(false)
    }

    async fn streamlocal_forward(
        &mut self,
        _path: &str,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.refused_remote_forward = true;
        Ok(false)
    }
}
