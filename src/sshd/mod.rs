//! The sshd backend: terminal sessions (shell, command, subsystem) carried
//! through the target's own sshd instead of SSM's shell documents, for
//! full fidelity — stdin, EOF, exit status and signals as with direct ssh,
//! and scp, sftp, rsync, git and Ansible with a plain `user+target@gw`.
//!
//! The gateway's pipeline is unchanged (plan, policies, Reason,
//! StartSession of AWS-StartSSHSession to the sshd port, recording); this
//! [`Carrier`] then takes the port session's byte stream and:
//! - [`client`]: logs in as the OS user the plan chose, with a certificate
//!   the gateway's user CA ([`ca`]) signs for this session only, after
//!   checking the target's host key ([`hostkeys`]);
//! - [`relay`]: replays the user's channel on the inner one, recording
//!   streams as with SSM documents, and an sftp subsystem as file
//!   operations ([`sftp`]).

pub mod ca;
pub mod client;
pub mod hostkeys;
pub mod relay;
pub mod sftp;

use std::sync::Arc;
use std::time::Duration;

use ssm_datachannel::PortSession;

use crate::gateway::backend::{Carried, Carrier};
use crate::gateway::error::GatewayError;
use crate::gateway::session::Link;
use crate::gateway::terminal::{Ended, Terminal};
use crate::recording::AuditKind;
use crate::request::Kind;
use ca::{CertRequest, UserCa};
use client::{InnerError, Login};
use hostkeys::HostTrust;
use relay::Recording;

/// Certificate validity when the gateway sets no maximum session length.
const DEFAULT_VALIDITY: Duration = Duration::from_secs(8 * 3600);

/// Carries sessions through targets' sshd.
pub struct SshdCarrier {
    ca: UserCa,
    trust: Arc<HostTrust>,
    validity: Duration,
}

impl SshdCarrier {
    /// A carrier signing with `ca`, trusting host keys through `trust`;
    /// certificates are valid for `max_session` (the session's allowed
    /// duration), or 8 hours when there is none.
    pub fn new(ca: UserCa, trust: HostTrust, max_session: Option<Duration>) -> Self {
        SshdCarrier {
            ca,
            trust: Arc::new(trust),
            validity: max_session.unwrap_or(DEFAULT_VALIDITY),
        }
    }
}

#[async_trait::async_trait]
impl Carrier for SshdCarrier {
    async fn carry(
        &self,
        session: Carried<'_>,
        link: Link,
        t: Terminal<'_>,
    ) -> Result<Ended, GatewayError> {
        let req = session.req;
        let os_user = session.plan.os_user.as_deref().unwrap_or("root");
        let issued = self
            .ca
            .issue(&CertRequest {
                os_user,
                key_id: format!("ssmgate:{}:{}", req.user.name, req.id),
                validity: self.validity,
                pty: t.pty.is_some(),
            })
            .map_err(|e| GatewayError::Sshd(e.to_string()))?;
        let port = PortSession::new(link.channel, link.events, &link.info);
        let stream = port
            .open_stream()
            .await
            .map_err(|e| GatewayError::NotReady(e.to_string()))?;
        let login = Login {
            target: session.target,
            os_user,
            key: issued.key,
            cert: issued.cert,
            pty: t.pty.as_ref(),
            env: &t.env,
            kind: &req.kind,
        };
        let inner = match client::open(self.trust.clone(), stream, login).await {
            Ok(inner) => inner,
            Err(e) => {
                if let InnerError::HostKey(host_key) = &e {
                    let detail = serde_json::json!({
                        "request_id": req.id.to_string(),
                        "target": session.target.id,
                        "error": host_key.to_string(),
                    });
                    session
                        .tap
                        .recorder()
                        .audit(
                            AuditKind::HostKeyRefused,
                            Some(&req.user.name),
                            Some(req.id),
                            Some(req.source.ip()),
                            detail,
                        )
                        .await;
                }
                port.close().await;
                return Err(GatewayError::Sshd(format!(
                    "cannot log in to {} through its sshd: {e}",
                    session.target.id
                )));
            }
        };
        let recording = match &req.kind {
            Kind::Subsystem { name } if name == "sftp" => Recording::Sftp(Box::default()),
            _ => Recording::Stream,
        };
        let ended = relay::relay(inner.channel, session.tap, recording, t.input, t.output).await;
        let _ = inner
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
        port.close().await;
        Ok(ended)
    }
}
