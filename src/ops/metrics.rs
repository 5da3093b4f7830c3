//! The gateway's Prometheus metrics: their names, descriptions, buckets and
//! one small typed function per thing counted, so that each call site is
//! one line (`metrics::session_refused(...)`). Built on the `metrics`
//! facade and `metrics-exporter-prometheus`, installed once per process
//! ([`install`], by `serve::start` when `[admin] listen` is set); before
//! that (or without an admin listener) every call here does nothing.
//!
//! Labels are bounded sets: kinds, methods, outcomes, operations, limits
//! and end reasons. No user, target or session is ever a label.
//!
//! Gauges that describe a state rather than events (recorder queue, spool,
//! database reachability, live reason grants) are set at scrape time by
//! the admin listener ([`super::admin`]) from the recorder and the store.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{
    Counter, Gauge, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge,
    histogram,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::aws::SsmError;
use crate::recording::{EndReason, SessionKind};
use crate::ssh::limits::Dropped;
use crate::ssh::session_limits::LimitReached;

/// Sessions opened, by `kind` (shell, exec, port, ssh).
pub const SESSIONS_OPENED: &str = "ssmgate_sessions_opened_total";
/// Sessions ended, by `kind` and `reason` (the recorded end reason).
pub const SESSIONS_ENDED: &str = "ssmgate_sessions_ended_total";
/// Sessions open now, by `kind`.
pub const SESSIONS_LIVE: &str = "ssmgate_sessions_live";
/// Bytes carried by sessions, by `kind` and `direction` (`in`: client →
/// target, `out`: target → client).
pub const SESSION_BYTES: &str = "ssmgate_session_bytes_total";
/// Authentication attempts, by `method` and `outcome`.
pub const AUTH_ATTEMPTS: &str = "ssmgate_auth_attempts_total";
/// Policy decisions, by `action` and `outcome` (allow, deny, error).
pub const POLICY_DECISIONS: &str = "ssmgate_policy_decisions_total";
/// How long policy decisions took, by `action`.
pub const POLICY_SECONDS: &str = "ssmgate_policy_decision_seconds";
/// AWS API calls, by `operation` and `outcome` (ok or an error class).
pub const SSM_CALLS: &str = "ssmgate_ssm_api_calls_total";
/// How long AWS API calls took, by `operation`.
pub const SSM_SECONDS: &str = "ssmgate_ssm_api_call_seconds";
/// ResumeSession calls made to resume a dropped data channel, by
/// `outcome` (ok, expired, error).
pub const DATACHANNEL_RESUMES: &str = "ssmgate_datachannel_resumes_total";
/// Connections that have not authenticated yet.
pub const PREAUTH_CONNECTIONS: &str = "ssmgate_preauth_connections";
/// Connections and channels refused by a limit, by `limit`.
pub const REFUSALS: &str = "ssmgate_refusals_total";
/// Bytes of recording ops queued in memory.
pub const RECORDER_QUEUE_BYTES: &str = "ssmgate_recorder_queue_bytes";
/// Bytes of recording ops waiting in the spool.
pub const SPOOL_BYTES: &str = "ssmgate_spool_bytes";
/// Age of the oldest write waiting in the spool (0 when empty).
pub const SPOOL_OLDEST_AGE: &str = "ssmgate_spool_oldest_age_seconds";
/// 1 while the session database answers, else 0.
pub const DATABASE_UP: &str = "ssmgate_database_up";
/// Reason grants neither expired nor revoked, over all replicas.
pub const GRANTS_LIVE: &str = "ssmgate_reason_grants_live";

/// Histogram buckets, in seconds: 100 µs (a policy decision) to 30 s (an
/// AWS call at its timeouts).
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder for this process (once; later calls
/// return the same handle) and describes every metric.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = match PrometheusBuilder::new().set_buckets(BUCKETS) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: histogram buckets refused; using summaries");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(e) = metrics::set_global_recorder(recorder) {
            // Another recorder owns the process: /metrics shows nothing.
            tracing::warn!(error = %e, "metrics: a metrics recorder is already installed");
        }
        describe();
        handle
    })
}

/// The metrics in the Prometheus text format, or `None` before
/// [`install`].
pub fn render() -> Option<String> {
    let handle = HANDLE.get()?;
    handle.run_upkeep();
    Some(handle.render())
}

fn describe() {
    describe_counter!(SESSIONS_OPENED, "Sessions opened, by kind");
    describe_counter!(SESSIONS_ENDED, "Sessions ended, by kind and end reason");
    describe_gauge!(SESSIONS_LIVE, "Sessions open now, by kind");
    describe_counter!(
        SESSION_BYTES,
        Unit::Bytes,
        "Bytes carried by sessions, by kind and direction (in: client to target)"
    );
    describe_counter!(
        AUTH_ATTEMPTS,
        "Authentication attempts, by method and outcome"
    );
    describe_counter!(POLICY_DECISIONS, "Policy decisions, by action and outcome");
    describe_histogram!(
        POLICY_SECONDS,
        Unit::Seconds,
        "Time taken by policy decisions, by action"
    );
    describe_counter!(SSM_CALLS, "AWS API calls, by operation and outcome");
    describe_histogram!(
        SSM_SECONDS,
        Unit::Seconds,
        "Time taken by AWS API calls, by operation"
    );
    describe_counter!(
        DATACHANNEL_RESUMES,
        "ResumeSession calls resuming a dropped data channel, by outcome"
    );
    describe_gauge!(PREAUTH_CONNECTIONS, "Connections not yet authenticated");
    describe_counter!(
        REFUSALS,
        "Connections and channels refused by a limit, by limit"
    );
    describe_gauge!(
        RECORDER_QUEUE_BYTES,
        Unit::Bytes,
        "Recording bytes queued in memory"
    );
    describe_gauge!(
        SPOOL_BYTES,
        Unit::Bytes,
        "Recording bytes waiting in the spool"
    );
    describe_gauge!(
        SPOOL_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest write waiting in the spool"
    );
    describe_gauge!(DATABASE_UP, "1 while the session database answers");
    describe_gauge!(
        GRANTS_LIVE,
        "Reason grants neither expired nor revoked, all replicas"
    );
}

/// One session's metrics: counted open on creation, its bytes as they
/// pass, and its end.
#[derive(Debug)]
pub struct SessionMetrics {
    kind: &'static str,
    live: Gauge,
    bytes_in: Counter,
    bytes_out: Counter,
}

impl SessionMetrics {
    /// A session of `kind` opened.
    pub fn opened(kind: SessionKind) -> Self {
        let kind = kind.as_str();
        counter!(SESSIONS_OPENED, "kind" => kind).increment(1);
        let live = gauge!(SESSIONS_LIVE, "kind" => kind);
        live.increment(1.0);
        Self {
            kind,
            live,
            bytes_in: counter!(SESSION_BYTES, "kind" => kind, "direction" => "in"),
            bytes_out: counter!(SESSION_BYTES, "kind" => kind, "direction" => "out"),
        }
    }

    /// Bytes client → target.
    pub fn bytes_in(&self, n: u64) {
        self.bytes_in.increment(n);
    }

    /// Bytes target → client.
    pub fn bytes_out(&self, n: u64) {
        self.bytes_out.increment(n);
    }

    /// Bytes both ways (client → target, target → client).
    pub fn bytes(&self, bytes_in: u64, bytes_out: u64) {
        self.bytes_in.increment(bytes_in);
        self.bytes_out.increment(bytes_out);
    }

    /// The session ended (call once).
    pub fn ended(&self, reason: EndReason) {
        counter!(SESSIONS_ENDED, "kind" => self.kind, "reason" => reason.as_str()).increment(1);
        self.live.decrement(1.0);
    }
}

/// Counts an authentication callback's answer `auth` for `method`
/// (`publickey`, `certificate`, `keyboard-interactive`, `password`) and
/// returns it: `accepted`, `partial` (a factor passed, another must
/// follow) or `rejected`; a prompt is not counted (the attempt goes on).
pub fn auth(method: &'static str, auth: russh::server::Auth) -> russh::server::Auth {
    use russh::server::Auth;
    let outcome = match &auth {
        Auth::Accept => "accepted",
        Auth::Reject {
            partial_success: true,
            ..
        } => "partial",
        Auth::Reject { .. } | Auth::UnsupportedMethod => "rejected",
        Auth::Partial { .. } => return auth,
    };
    counter!(AUTH_ATTEMPTS, "method" => method, "outcome" => outcome).increment(1);
    auth
}

/// A policy decision on `action` that took `took`.
pub fn policy_decision(action: &'static str, allowed: bool, errors: bool, took: Duration) {
    let outcome = match (allowed, errors) {
        (true, _) => "allow",
        (false, false) => "deny",
        (false, true) => "error",
    };
    counter!(POLICY_DECISIONS, "action" => action, "outcome" => outcome).increment(1);
    histogram!(POLICY_SECONDS, "action" => action).record(took.as_secs_f64());
}

/// Runs one AWS API call (`operation` as AWS names it), counting it by
/// outcome and timing it.
pub async fn ssm_call<T>(
    operation: &'static str,
    call: impl Future<Output = Result<T, SsmError>>,
) -> Result<T, SsmError> {
    let started = Instant::now();
    let result = call.await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => error_class(e),
    };
    counter!(SSM_CALLS, "operation" => operation, "outcome" => outcome).increment(1);
    histogram!(SSM_SECONDS, "operation" => operation).record(started.elapsed().as_secs_f64());
    result
}

/// A bounded label for an AWS error.
fn error_class(e: &SsmError) -> &'static str {
    match e {
        SsmError::TargetNotConnected { .. } => "target_not_connected",
        SsmError::InvalidDocument { .. } => "invalid_document",
        SsmError::DoesNotExist(_) => "not_found",
        SsmError::AccessDenied(_) => "access_denied",
        SsmError::Throttled { .. } => "throttled",
        SsmError::InvalidParameters(_) => "invalid_parameters",
        SsmError::Validation(_) => "validation",
        SsmError::Credentials(_) => "credentials",
        SsmError::Unreachable { .. } => "unreachable",
        SsmError::Other { .. } => "other",
    }
}

/// A ResumeSession for a dropped data channel: `Some(true)` gave a
/// token, `Some(false)` found the session over, `None` failed.
pub fn datachannel_resume(outcome: Option<bool>) {
    let outcome = match outcome {
        Some(true) => "ok",
        Some(false) => "expired",
        None => "error",
    };
    counter!(DATACHANNEL_RESUMES, "outcome" => outcome).increment(1);
}

/// An unauthenticated connection took a slot (`+1`) or gave it up (`-1`).
pub fn preauth_connections(delta: f64) {
    gauge!(PREAUTH_CONNECTIONS).increment(delta);
}

/// A new connection dropped before the SSH handshake (`max_startups`).
pub fn connection_refused(why: &Dropped) {
    let limit = match why {
        Dropped::PerSource => "max_startups_per_source",
        Dropped::Full => "max_startups_full",
        Dropped::Early { .. } => "max_startups_early",
    };
    counter!(REFUSALS, "limit" => limit).increment(1);
}

/// A channel refused by a session limit (`gateway_full`: the gateway's
/// open-files capacity).
pub fn session_refused(why: &LimitReached) {
    let limit = match why {
        LimitReached::Connection(_) => "max_sessions_per_connection",
        LimitReached::User(_) => "max_sessions_per_user",
        LimitReached::Gateway(_) => "gateway_full",
    };
    counter!(REFUSALS, "limit" => limit).increment(1);
}

/// What the recorder and the store look like now (set at scrape time).
#[derive(Debug, Clone, Copy, Default)]
pub struct StateSample {
    pub queue_bytes: u64,
    pub spool_bytes: u64,
    pub spool_oldest_age: Option<Duration>,
    pub database_up: bool,
    /// `None` when the database could not be asked (the gauge keeps its
    /// last value).
    pub grants_live: Option<u64>,
}

/// Sets the state gauges.
pub fn set_state(s: &StateSample) {
    gauge!(RECORDER_QUEUE_BYTES).set(s.queue_bytes as f64);
    gauge!(SPOOL_BYTES).set(s.spool_bytes as f64);
    gauge!(SPOOL_OLDEST_AGE).set(s.spool_oldest_age.map_or(0.0, |a| a.as_secs_f64()));
    gauge!(DATABASE_UP).set(if s.database_up { 1.0 } else { 0.0 });
    if let Some(n) = s.grants_live {
        gauge!(GRANTS_LIVE).set(n as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusals(text: &str, limit: &str) -> f64 {
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())));
        let Ok(scrape) = scrape else { return -1.0 };
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == REFUSALS && s.labels.get("limit") == Some(limit))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => -1.0,
            })
            .sum()
    }

    #[test]
    fn limits_are_labelled_and_rendered() {
        install();
        let before = render().unwrap_or_default();
        session_refused(&LimitReached::Gateway(2));
        session_refused(&LimitReached::User(32));
        connection_refused(&Dropped::Early { chance: 50 });
        let after = render().unwrap_or_default();
        for limit in [
            "gateway_full",
            "max_sessions_per_user",
            "max_startups_early",
        ] {
            assert_eq!(
                refusals(&after, limit) - refusals(&before, limit),
                1.0,
                "{limit}: {after}"
            );
        }
        assert!(
            after.contains("# TYPE ssmgate_refusals_total counter"),
            "{after}"
        );
    }
}
