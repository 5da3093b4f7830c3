//! What the gateway tells the recorder: the session row built from a
//! request and its start, how a pipe's [`Ended`] maps to an end reason,
//! and [`EndCause`], why the gateway itself cut a connection.

use std::collections::BTreeMap;

use crate::gateway::plan::Plan;
use crate::gateway::terminal::Ended;
use crate::inventory::Target;
use crate::recording::{AuthKind, Decision, EndReason, RecordingMode, SessionKind, SessionRecord};
use crate::request::{Action, AuthMethod, Kind, SessionRequest};

/// Everything about a started session that goes into its row.
pub struct Started<'a> {
    pub req: &'a SessionRequest,
    pub target: &'a Target,
    pub plan: &'a Plan,
    pub ssm_session_id: &'a str,
    pub aws_reason: &'a str,
    pub policy_ids: &'a [String],
}

/// The session row at its start.
pub fn session_record(s: &Started<'_>) -> SessionRecord {
    let (auth_method, key_fingerprint, cert_key_id, cert_serial, cert_ca) = match &s.req.auth {
        AuthMethod::PublicKey { fingerprint } => (
            AuthKind::PublicKey,
            Some(fingerprint.clone()),
            None,
            None,
            None,
        ),
        AuthMethod::Certificate {
            fingerprint,
            key_id,
            serial,
            ca_fingerprint,
            ..
        } => (
            AuthKind::Certificate,
            Some(fingerprint.clone()),
            Some(key_id.clone()),
            Some(*serial),
            Some(ca_fingerprint.clone()),
        ),
    };
    let kind = session_kind(&s.req.kind);
    SessionRecord {
        id: s.req.id,
        ssm_session_id: Some(s.ssm_session_id.to_owned()),
        user: s.req.user.name.clone(),
        auth_method,
        key_fingerprint,
        cert_key_id,
        cert_serial,
        cert_ca_fingerprint: cert_ca,
        source_ip: s.req.source.ip(),
        source_port: s.req.source.port(),
        client_version: s.req.client_version.clone(),
        target_id: s.target.id.clone(),
        target_name: s.target.name.clone(),
        document: Some(s.plan.document.clone()),
        parameters: Some(parameters_json(&recorded_parameters(s.req, s.plan))),
        justification: s.req.reason.as_ref().map(|r| r.as_str().to_owned()),
        aws_reason: Some(s.aws_reason.to_owned()),
        decision: Decision::Allow,
        policy_ids: s.policy_ids.to_vec(),
        kind,
        // Port and ProxyJump content is opaque (often end-to-end
        // encrypted): only connections and byte counts are kept.
        recording: match kind {
            SessionKind::Shell | SessionKind::Exec => RecordingMode::Full,
            SessionKind::Port | SessionKind::Ssh => RecordingMode::Metadata,
        },
        started_at: crate::recording::now(),
        end: None,
        chain_head: None,
        start_seal: None,
        backend: Some(s.plan.backend.as_str().to_owned()),
        os_user: s.plan.os_user.clone(),
        replica: None,
    }
}

/// The stored kind of a requested session, from its policy action.
pub fn session_kind(kind: &Kind) -> SessionKind {
    match kind.action() {
        Action::Shell => SessionKind::Shell,
        Action::Exec => SessionKind::Exec,
        Action::Ssh => SessionKind::Ssh,
        Action::PortForward => SessionKind::Port,
    }
}

/// The parameters recorded for a session: the document's, plus what the
/// request itself carried that the document does not show (through the
/// sshd backend, the command or subsystem travels inside SSH, not in the
/// StartSession parameters).
pub fn recorded_parameters(req: &SessionRequest, plan: &Plan) -> BTreeMap<String, Vec<String>> {
    let mut all = plan.parameters.clone();
    for (k, v) in Plan::policy_parameters(req) {
        all.entry(k).or_insert_with(|| vec![v]);
    }
    all
}

/// The parameters as a JSON object (`{"command":["uptime"]}`).
pub fn parameters_json(parameters: &BTreeMap<String, Vec<String>>) -> String {
    serde_json::to_string(parameters).unwrap_or_else(|_| "{}".into())
}

/// The end reason and exit status recorded for how a pipe ended.
pub fn end_of(ended: &Ended) -> (EndReason, Option<i32>) {
    match ended {
        Ended::ClientClosed => (EndReason::ClientClosed, None),
        Ended::TargetExited { exit_status } => (EndReason::TargetExited, *exit_status),
        Ended::Error(_) => (EndReason::Error, None),
    }
}

/// Why the gateway itself ended a connection (maximum duration, idle
/// timeout, shutdown), set before it disconnects, so that the sessions the
/// cut ends are recorded with that reason (and cause) rather than as closed
/// by the client.
#[derive(Debug, Default)]
pub struct EndCause(std::sync::Mutex<Option<(EndReason, Option<&'static str>)>>);

impl EndCause {
    /// Remembers why the connection is being cut (the first cause wins).
    pub fn set(&self, reason: EndReason) {
        self.set_caused(reason, None);
    }

    /// [`set`](Self::set), with the cause recorded with the end
    /// (`shutdown`).
    pub fn set_caused(&self, reason: EndReason, cause: Option<&'static str>) {
        let mut c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        c.get_or_insert((reason, cause));
    }

    /// The reason to record for a session that ended as `seen` on this
    /// connection: the gateway's cause wins over what the cut looks like
    /// from the pipe (the client side closing, or an error).
    pub fn resolve(&self, seen: EndReason) -> EndReason {
        self.resolve_caused(seen).0
    }

    /// [`resolve`](Self::resolve), with the cause to record.
    pub fn resolve_caused(&self, seen: EndReason) -> (EndReason, Option<String>) {
        let cause = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        match (cause, seen) {
            (Some((c, text)), EndReason::ClientClosed | EndReason::Error) => {
                (c, text.map(str::to_owned))
            }
            _ => (seen, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateways_cause_wins_over_what_the_pipe_saw() {
        let cause = EndCause::default();
        assert_eq!(
            cause.resolve(EndReason::ClientClosed),
            EndReason::ClientClosed
        );
        cause.set(EndReason::TimedOut);
        cause.set(EndReason::Terminated);
        assert_eq!(cause.resolve(EndReason::ClientClosed), EndReason::TimedOut);
        assert_eq!(cause.resolve(EndReason::Error), EndReason::TimedOut);
        // A target that exited by itself did not time out.
        assert_eq!(
            cause.resolve(EndReason::TargetExited),
            EndReason::TargetExited
        );
    }
}
