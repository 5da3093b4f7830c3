//! The values the recording store keeps: session rows ([`SessionRecord`],
//! [`SessionEnd`]), chunks of session events ([`EventChunk`], [`Event`]) and
//! audit events ([`AuditEvent`]), with the small enums they use and their
//! stable text codes (what the database columns hold).
//!
//! Timestamps are kept with microsecond precision (what Postgres
//! `timestamptz` holds); build them with [`now`] or [`truncate_micros`] so
//! that a value read back compares equal to the one written.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::seal::Seal;

/// The current time, truncated to microseconds (the stores' precision).
pub fn now() -> DateTime<Utc> {
    truncate_micros(Utc::now())
}

/// `t` without its sub-microsecond part.
pub fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// A text code stored in the database was not one this version knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownCode {
    /// Which enum was being parsed.
    pub what: &'static str,
    /// The text found.
    pub value: String,
}

/// Defines a field-less enum with stable text codes.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident => $code:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stable text code stored in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $code,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl FromStr for $name {
            type Err = UnknownCode;

            fn from_str(s: &str) -> Result<Self, UnknownCode> {
                match s {
                    $($code => Ok($name::$variant),)+
                    _ => Err(UnknownCode { what: $what, value: s.to_owned() }),
                }
            }
        }
    };
}

text_enum!(
    /// How the user proved who they are.
    AuthKind, "auth method" {
        /// A key listed for the user (`publickey`).
        PublicKey => "publickey",
        /// An OpenSSH user certificate from a trusted CA (`certificate`).
        Certificate => "certificate",
    }
);

text_enum!(
    /// The policy decision that let the session start (or refused it).
    Decision, "decision" {
        /// Allowed (`allow`).
        Allow => "allow",
        /// Denied (`deny`).
        Deny => "deny",
    }
);

text_enum!(
    /// What kind of session it is.
    SessionKind, "session kind" {
        /// An interactive shell (`shell`).
        Shell => "shell",
        /// A command (`exec`).
        Exec => "exec",
        /// A forwarded TCP port (`port`).
        Port => "port",
        /// ProxyJump to the target's SSH port (`ssh`).
        Ssh => "ssh",
    }
);

text_enum!(
    /// How a session ended.
    EndReason, "end reason" {
        /// The client closed its side (`client_closed`).
        ClientClosed => "client_closed",
        /// The remote shell or command finished (`target_exited`).
        TargetExited => "target_exited",
        /// The session was terminated (`terminated`).
        Terminated => "terminated",
        /// An idle or maximum-duration timeout ended it (`timed_out`).
        TimedOut => "timed_out",
        /// Something failed (`error`).
        Error => "error",
    }
);

text_enum!(
    /// What is recorded for a session.
    RecordingMode, "recording mode" {
        /// Metadata and every event (`full`).
        Full => "full",
        /// Metadata only, no events (`metadata`).
        Metadata => "metadata",
    }
);

text_enum!(
    /// What an audit event is about.
    AuditKind, "audit kind" {
        /// A user authenticated (`auth_success`).
        AuthSuccess => "auth_success",
        /// An authentication attempt was refused (`auth_failure`).
        AuthFailure => "auth_failure",
        /// Policy allowed a request (`decision_allow`).
        DecisionAllow => "decision_allow",
        /// Policy denied a request (`decision_deny`).
        DecisionDeny => "decision_deny",
        /// A session started (`session_start`).
        SessionStart => "session_start",
        /// A session ended (`session_end`).
        SessionEnd => "session_end",
        /// The policy set was reloaded (`policy_reload`).
        PolicyReload => "policy_reload",
        /// An administrative action (`admin`).
        Admin => "admin",
        /// A target's sshd offered a host key the gateway does not trust
        /// (`host_key_refused`).
        HostKeyRefused => "host_key_refused",
        /// A user granted themselves a reason for a while (`reason_granted`).
        ReasonGranted => "reason_granted",
        /// Reason grants were revoked (`reason_revoked`).
        ReasonRevoked => "reason_revoked",
    }
);

/// A reason grant as stored (see `request::grant`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    /// Its id.
    pub id: Uuid,
    /// Whose reason it is.
    pub user: String,
    /// The reason, already checked.
    pub reason: String,
    /// The targets it covers (a `request::TargetPattern`); all when `None`.
    pub target_pattern: Option<String>,
    /// Where it was made from.
    pub source_ip: IpAddr,
    /// When it was made (microseconds, as stored).
    pub created_at: DateTime<Utc>,
    /// When it ends (microseconds, as stored).
    pub expires_at: DateTime<Utc>,
}

/// One gateway session as stored: what is known at its start, and once it
/// has ended, how it ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionRecord {
    /// The gateway's session id (also sent to AWS in the Reason).
    pub id: Uuid,
    /// The SSM session id, once StartSession answered.
    pub ssm_session_id: Option<String>,
    /// The authenticated user.
    pub user: String,
    /// How they authenticated.
    pub auth_method: AuthKind,
    /// `SHA256:…` of the key used (the certified key for certificates).
    pub key_fingerprint: Option<String>,
    /// The certificate's key id (`ssh-keygen -I`).
    pub cert_key_id: Option<String>,
    /// The certificate's serial (`ssh-keygen -z`).
    pub cert_serial: Option<u64>,
    /// `SHA256:…` of the CA that signed the certificate.
    pub cert_ca_fingerprint: Option<String>,
    /// The client's address.
    pub source_ip: IpAddr,
    /// The client's port.
    pub source_port: u16,
    /// The client's SSH version string (`SSH-2.0-OpenSSH_9.6`).
    pub client_version: Option<String>,
    /// The target's instance id.
    pub target_id: String,
    /// The target's name, if it has one.
    pub target_name: Option<String>,
    /// The SSM document.
    pub document: Option<String>,
    /// The document parameters as JSON text (an object).
    pub parameters: Option<String>,
    /// The user's justification, as typed.
    pub justification: Option<String>,
    /// The exact Reason sent to AWS.
    pub aws_reason: Option<String>,
    /// The policy decision.
    pub decision: Decision,
    /// The ids of the policies that determined the decision.
    pub policy_ids: Vec<String>,
    /// Shell, exec, port or ssh.
    pub kind: SessionKind,
    /// Full or metadata-only recording.
    pub recording: RecordingMode,
    /// When the session started.
    pub started_at: DateTime<Utc>,
    /// How it ended; `None` while it is live.
    pub end: Option<SessionEnd>,
    /// The hash of the last chunk stored for it ([`crate::recording::chain`]);
    /// `None` until a chunk is stored. The stores advance it with every
    /// appended chunk, and [`Store::finish_session`](super::Store::finish_session)
    /// sets the final one.
    pub chain_head: Option<[u8; 32]>,
    /// The keyed seal of the start fields ([`crate::recording::seal`]),
    /// made by the recorder; `None` for sessions recorded before sealing.
    #[serde(default)]
    pub start_seal: Option<Seal>,
    /// What carried it: `ssm` (SSM documents) or `sshd` (the target's
    /// own sshd); `None` for sessions recorded before backends existed.
    #[serde(default)]
    pub backend: Option<String>,
    /// The OS user it logged in as, when the gateway chose it (sshd).
    #[serde(default)]
    pub os_user: Option<String>,
    /// The gateway replica that runs it (`ops::cluster`); `None` for
    /// sessions recorded before replicas registered. Not sealed: it says
    /// where to send a kill, not what happened.
    #[serde(default)]
    pub replica: Option<Uuid>,
}

impl SessionRecord {
    /// True while the session has not ended.
    pub fn is_live(&self) -> bool {
        self.end.is_none()
    }
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionEnd {
    /// When it ended.
    pub ended_at: DateTime<Utc>,
    /// Why.
    pub reason: EndReason,
    /// The remote exit status, when there was one.
    pub exit_status: Option<i32>,
    /// Bytes from the client to the target.
    pub bytes_in: u64,
    /// Bytes from the target to the client.
    pub bytes_out: u64,
    /// The final chain head to store with the end; `None` keeps the one
    /// already stored. Always `None` when read back: the head is
    /// [`SessionRecord::chain_head`].
    pub chain_head: Option<[u8; 32]>,
    /// How many chunks the session has in all (what the end seal covers);
    /// `None` for sessions recorded before sealing.
    #[serde(default)]
    pub chunk_count: Option<u64>,
    /// The keyed seal of the end (with the chunk count and final head);
    /// `None` for sessions recorded before sealing.
    #[serde(default)]
    pub seal: Option<Seal>,
    /// Why the gateway ended it, when it did (`shutdown`, `killed by …:
    /// …`, `user locked …`, `orphaned …`); sealed with the end.
    #[serde(default)]
    pub cause: Option<String>,
}

/// What happened at one moment of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// Bytes the target sent to the client.
    Output,
    /// Bytes the client sent to the target.
    Input,
    /// The terminal was resized.
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// The remote shell or command exited.
    Exit {
        /// Its exit status.
        code: i32,
    },
    /// A forwarded connection opened (port and ssh sessions).
    ConnOpen {
        /// The connection's number within the session.
        id: u64,
    },
    /// A forwarded connection closed, with what it carried.
    ConnClose {
        /// The connection's number within the session.
        id: u64,
        /// Bytes from the client to the target.
        bytes_in: u64,
        /// Bytes from the target to the client.
        bytes_out: u64,
    },
    /// A file operation of an sftp session; the data is the operation as
    /// a JSON object (`{"op":"close","path":…,"written_sha256":…}`).
    File,
}

/// One event of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Milliseconds since the session started.
    pub offset_ms: u64,
    /// What happened.
    pub kind: EventKind,
    /// The bytes, for `Output` and `Input`; empty otherwise.
    pub data: Bytes,
}

/// A batch of consecutive events of one session, linked into the session's
/// hash chain (see [`crate::recording::chain`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventChunk {
    /// The session.
    pub session_id: Uuid,
    /// Position in the session's chain: 0, 1, 2, …
    pub seq: i64,
    /// The events, in order.
    pub events: Vec<Event>,
    /// The hash of the previous chunk (for seq 0, the chain's genesis).
    pub prev_hash: [u8; 32],
    /// SHA-256(prev_hash ‖ canonical bytes of this chunk).
    pub hash: [u8; 32],
    /// When the chunk was sealed (microsecond precision).
    pub created_at: DateTime<Utc>,
    /// The keyed seal of `hash`; `None` for chunks recorded before sealing.
    pub seal: Option<Seal>,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditEvent {
    /// Unique id (inserting the same id again is a no-op).
    pub id: Uuid,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What it is about.
    pub kind: AuditKind,
    /// The user concerned, if known.
    pub user: Option<String>,
    /// The session concerned, if any.
    pub session_id: Option<Uuid>,
    /// The client address, if any.
    pub source_ip: Option<IpAddr>,
    /// Details as JSON text (an object, e.g. `{"reason":"key not authorized"}`).
    pub detail: String,
    /// Its place in an audit chain, with its seal; `None` for events
    /// recorded before sealing (or without a key).
    #[serde(default)]
    pub link: Option<AuditLink>,
}

/// Where a sealed audit event sits: each recorder (gateway process) writes
/// its own audit chain, numbering its events 0, 1, 2, … so that a missing,
/// moved or edited row shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditLink {
    /// The chain (a random id per recorder).
    pub chain_id: Uuid,
    /// The event's number in the chain, from 0.
    pub seq: i64,
    /// The keyed seal over the event, the chain id and `seq`.
    pub seal: Seal,
}

/// Which sessions [`Store::list_sessions`](super::Store::list_sessions)
/// returns. Every set field must match; newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// Only this user's sessions.
    pub user: Option<String>,
    /// Only sessions to this target (its id or its name).
    pub target: Option<String>,
    /// Only sessions started at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only sessions that have not ended.
    pub live_only: bool,
    /// At most this many.
    pub limit: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for k in AuditKind::ALL {
            assert_eq!(k.as_str().parse::<AuditKind>(), Ok(*k));
        }
        for k in EndReason::ALL {
            assert_eq!(k.to_string().parse::<EndReason>(), Ok(*k));
        }
        let err = "bogus".parse::<SessionKind>().unwrap_err();
        assert_eq!(err.to_string(), "unknown session kind \"bogus\"");
    }

    #[test]
    fn now_is_whole_microseconds() {
        let t = now();
        assert_eq!(t.timestamp_subsec_nanos() % 1000, 0);
        assert_eq!(truncate_micros(t), t);
    }
}
