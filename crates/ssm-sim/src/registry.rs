//! Live and past sessions: the state the SSM API half (StartSession,
//! ResumeSession, TerminateSession, DescribeSessions) and the data-channel
//! half (the WebSocket open-frame token check, status updates, termination)
//! share.
//!
//! [`Registry`] is a cheap `Clone` handle around `Arc<Mutex<…>>`; the lock
//! is never held across an `.await` (no method is async). Session tokens
//! live only inside the registry and in [`Started`], whose `Debug` hides
//! them.
//!
//! It also knows which accounts this simulated AWS holds (the home
//! [`Location`]'s and the config's `[[accounts]]`) and answers, for the API
//! half, what a request served at a location sees: the instances there
//! ([`Registry::instances_at`]) and the sessions started there (each
//! [`SessionEntry::location`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use rand::RngCore;
use tokio::sync::watch;

use crate::api::error::ApiError;
use crate::api::faults::ApiFaults;
use crate::api::sessions::validate_start_session;
use crate::config::FaultConfig;
use crate::documents::{self, ResolvedDocument};
use crate::identity::{Caller, CallerError, Identities};
use crate::inventory::{Instance, Inventory};
pub use crate::location::Location;

/// Terminated sessions kept for `DescribeSessions --state History`.
const HISTORY_LIMIT: usize = 1000;

/// A session's state, with `DescribeSessions` spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    /// Started; no client has opened the data channel yet.
    Connecting,
    /// A client is attached to the data channel.
    Connected,
    /// The client's WebSocket dropped; the session may be resumed.
    Disconnected,
    /// Ending (agent draining, `channel_closed` about to be sent).
    Terminating,
    /// Ended normally or by `TerminateSession`.
    Terminated,
    /// Ended by an error.
    Failed,
}

impl SessionStatus {
    /// The wire spelling (`Connected`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Connecting => "Connecting",
            SessionStatus::Connected => "Connected",
            SessionStatus::Disconnected => "Disconnected",
            SessionStatus::Terminating => "Terminating",
            SessionStatus::Terminated => "Terminated",
            SessionStatus::Failed => "Failed",
        }
    }

    /// Parses a wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        [
            SessionStatus::Connecting,
            SessionStatus::Connected,
            SessionStatus::Disconnected,
            SessionStatus::Terminating,
            SessionStatus::Terminated,
            SessionStatus::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Terminated or Failed: the session is over for good.
    pub fn is_ended(self) -> bool {
        matches!(self, SessionStatus::Terminated | SessionStatus::Failed)
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot of one session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEntry {
    /// `<owner>-<17 hex>`.
    pub session_id: String,
    /// The instance id given to `StartSession`.
    pub target: String,
    /// Where it was started (the caller's account and the request's
    /// region, the target's): only requests served there see it.
    pub location: Location,
    /// That instance (as it was when the session started).
    pub instance: Instance,
    /// The resolved session document.
    pub document: ResolvedDocument,
    /// `StartSession`'s `Reason`.
    pub reason: Option<String>,
    /// `Owner` as `DescribeSessions` shows it: the caller's ARN (an IAM
    /// user's, or the assumed-role session's).
    pub owner: String,
    /// Who started it, with the role session's `SourceIdentity` and
    /// session tags when the caller used credentials of the sim's
    /// `AssumeRole` ([`Caller::source_identity`], [`Caller::session_tag`]).
    pub caller: Caller,
    /// When `StartSession` ran.
    pub started: SystemTime,
    /// Current state.
    pub status: SessionStatus,
    /// When the session ended (Terminated/Failed).
    pub ended: Option<SystemTime>,
}

/// What `StartSession` / `ResumeSession` hand out.
#[derive(Clone, PartialEq, Eq)]
pub struct Started {
    /// The session id.
    pub session_id: String,
    /// The data-channel token (secret: never log it).
    pub token: String,
    /// `{stream_base}/v1/data-channel/{session_id}?role=publish_subscribe`.
    pub stream_url: String,
}

impl fmt::Debug for Started {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Started")
            .field("session_id", &self.session_id)
            .field("token", &"***")
            .field("stream_url", &self.stream_url)
            .finish()
    }
}

/// What an authorised WebSocket open gets: the session and a signal that
/// turns `true` when the session is terminated (by `TerminateSession` or a
/// terminal [`Registry::set_status`]).
#[derive(Debug, Clone)]
pub struct SessionHandle {
    /// Snapshot at open time.
    pub entry: SessionEntry,
    /// Becomes `true` once the session has ended.
    pub terminated: watch::Receiver<bool>,
}

/// One `DescribeSessions` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionFilter {
    /// Started at or after this time.
    InvokedAfter(SystemTime),
    /// Started at or before this time.
    InvokedBefore(SystemTime),
    /// Target instance id.
    Target(String),
    /// Owner name.
    Owner(String),
    /// Status.
    Status(SessionStatus),
    /// Session id.
    SessionId(String),
}

impl SessionFilter {
    /// True when `entry` passes this filter.
    pub fn matches(&self, entry: &SessionEntry) -> bool {
        match self {
            SessionFilter::InvokedAfter(t) => entry.started >= *t,
            SessionFilter::InvokedBefore(t) => entry.started <= *t,
            SessionFilter::Target(t) => entry.target == *t,
            SessionFilter::Owner(o) => entry.owner == *o,
            SessionFilter::Status(s) => entry.status == *s,
            SessionFilter::SessionId(id) => entry.session_id == *id,
        }
    }
}

struct Record {
    entry: SessionEntry,
    token: String,
    terminated: watch::Sender<bool>,
}

#[derive(Default)]
struct State {
    sessions: BTreeMap<String, Record>,
    /// Ended session ids, oldest first (for the history cap).
    ended: VecDeque<String>,
}

struct Inner {
    /// The home account and region.
    location: Location,
    /// The other accounts this simulated AWS holds.
    accounts: BTreeSet<String>,
    inventory: Inventory,
    stream_base: String,
    faults: FaultConfig,
    /// Injected API errors and call counts (its own lock).
    api_faults: Arc<ApiFaults>,
    /// Credentials issued by STS `AssumeRole` (its own lock).
    identities: Arc<Identities>,
    state: Mutex<State>,
}

/// The shared session registry (cheap to clone).
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("instances", &self.inner.inventory.len())
            .field("stream_base", &self.inner.stream_base)
            .finish_non_exhaustive()
    }
}

/// 128+ random bits as lowercase hex.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Longest owner name kept in session ids (ids are at most 96 characters).
const OWNER_MAX: usize = 64;

/// Reduces a caller name to `[A-Za-z0-9_.@+=,-]` (what IAM user and role
/// session names may hold; whether SSM rewrites any of it in session ids
/// is not known), at most 64 characters; `sim-user` when nothing usable is
/// left.
pub fn sanitize_owner(raw: &str) -> String {
    let cleaned: String = raw
        .chars()
        .filter(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '+' | '=' | ',')
        })
        .take(OWNER_MAX)
        .collect();
    let cleaned = cleaned.trim_matches(|c| c == '-' || c == '.').to_owned();
    if cleaned.is_empty() {
        "sim-user".to_owned()
    } else {
        cleaned
    }
}

/// Compares two strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Registry {
    /// A registry serving `inventory`, handing out stream URLs under
    /// `stream_base` (e.g. `ws://127.0.0.1:4080`), with `faults` for the
    /// data-channel half to read.
    pub fn new(inventory: Inventory, stream_base: String, faults: FaultConfig) -> Self {
        Registry {
            inner: Arc::new(Inner {
                location: Location::default(),
                accounts: BTreeSet::new(),
                inventory,
                stream_base: stream_base.trim_end_matches('/').to_owned(),
                faults,
                api_faults: Arc::default(),
                identities: Arc::default(),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The same registry with `location` as its home account and region.
    /// Call it before the registry is shared (clones made earlier keep the
    /// old location).
    pub fn in_location(self, location: Location) -> Self {
        self.modified(|inner| inner.location = location)
    }

    /// The same registry also holding `accounts` (besides the home one):
    /// roles in them may be assumed, and their instances reached with the
    /// credentials. Call it before the registry is shared.
    pub fn with_accounts<I, S>(self, accounts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let accounts: BTreeSet<String> = accounts.into_iter().map(Into::into).collect();
        self.modified(|inner| inner.accounts = accounts)
    }

    /// `change` applied to the registry's settings: in place when this is
    /// the only handle, else to a copy (with no sessions).
    fn modified(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner,
            Err(shared) => Inner {
                location: shared.location.clone(),
                accounts: shared.accounts.clone(),
                inventory: shared.inventory.clone(),
                stream_base: shared.stream_base.clone(),
                faults: shared.faults.clone(),
                api_faults: Arc::clone(&shared.api_faults),
                identities: Arc::clone(&shared.identities),
                state: Mutex::new(State::default()),
            },
        };
        change(&mut inner);
        Registry {
            inner: Arc::new(inner),
        }
    }

    /// The home account and region: plain access keys act in that account,
    /// unsigned requests in that region, and instances that name no
    /// account or region are there.
    pub fn location(&self) -> &Location {
        &self.inner.location
    }

    /// True when `account` exists in this simulated AWS: the home account
    /// or one of the config's `[[accounts]]`.
    pub fn hosts_account(&self, account: &str) -> bool {
        account == self.inner.location.account || self.inner.accounts.contains(account)
    }

    /// Every account held: the home one, then the others in order.
    pub fn accounts(&self) -> Vec<String> {
        std::iter::once(self.inner.location.account.clone())
            .chain(
                self.inner
                    .accounts
                    .iter()
                    .filter(|a| **a != self.inner.location.account)
                    .cloned(),
            )
            .collect()
    }

    /// Every instance, in all accounts and regions.
    pub fn inventory(&self) -> &Inventory {
        &self.inner.inventory
    }

    /// The instances a request served at `at` sees, in id order.
    pub fn instances_at<'a>(&'a self, at: &'a Location) -> impl Iterator<Item = &'a Instance> {
        let home = &self.inner.location;
        self.inner
            .inventory
            .iter()
            .filter(move |i| i.is_at(at, home))
    }

    /// Instance `id` if a request served at `at` sees it.
    pub fn instance_at(&self, at: &Location, id: &str) -> Option<&Instance> {
        self.inner
            .inventory
            .get(id)
            .filter(|i| i.is_at(at, &self.inner.location))
    }

    /// Where instance `id` is, in whichever account and region.
    pub fn location_of(&self, id: &str) -> Option<Location> {
        self.inner
            .inventory
            .get(id)
            .map(|i| i.location(&self.inner.location))
    }

    /// The fault-injection settings.
    pub fn faults(&self) -> &FaultConfig {
        &self.inner.faults
    }

    /// API fault injection: `registry.api_faults().fail("GetResources",
    /// "ThrottledException", "Rate exceeded", Some(2))`, `clear(…)`.
    pub fn api_faults(&self) -> &ApiFaults {
        &self.inner.api_faults
    }

    /// How many requests for `operation` (`StartSession`, `GetResources`,
    /// `AssumeRole`, …) the API received, refused ones included.
    pub fn api_calls(&self, operation: &str) -> u64 {
        self.inner.api_faults.calls(operation)
    }

    /// Requests per operation so far.
    pub fn api_call_counts(&self) -> BTreeMap<String, u64> {
        self.inner.api_faults.call_counts()
    }

    /// Credentials issued by the sim's STS `AssumeRole`.
    pub fn identities(&self) -> &Identities {
        &self.inner.identities
    }

    /// The caller behind a request's access key id and session token
    /// (see [`crate::identity`]), for a request signed for `region` (the
    /// partition of a plain key's user ARN follows it).
    pub fn caller(
        &self,
        access_key_id: Option<&str>,
        session_token: Option<&str>,
        region: &str,
    ) -> Result<Caller, CallerError> {
        self.inner.identities.resolve(
            access_key_id,
            session_token,
            &self.inner.location.in_region(region),
        )
    }

    /// The base of stream URLs.
    pub fn stream_base(&self) -> &str {
        &self.inner.stream_base
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn stream_url(&self, session_id: &str) -> String {
        format!(
            "{}/v1/data-channel/{session_id}?role=publish_subscribe",
            self.inner.stream_base
        )
    }

    /// `StartSession` served at `at`: validates the request, resolves the
    /// document, checks the target is there and `Online`, and records a
    /// `Connecting` session at `at`.
    ///
    /// Errors: `ValidationException`, `InvalidDocument`, `InvalidParameters`,
    /// `TargetNotConnected` (also for an unknown target or one of another
    /// account or region).
    pub fn start_session(
        &self,
        caller: &Caller,
        at: &Location,
        target: &str,
        document: Option<&str>,
        params: &BTreeMap<String, Vec<String>>,
        reason: Option<&str>,
    ) -> Result<Started, ApiError> {
        validate_start_session(target, document, params, reason)?;
        let resolved = documents::resolve(document, params)
            .map_err(|e| ApiError::new(e.aws_code(), e.to_string()))?;
        let instance = match self.instance_at(at, target) {
            Some(instance) if instance.is_connected() => instance.clone(),
            _ => return Err(ApiError::target_not_connected(target)),
        };
        let prefix = sanitize_owner(&caller.name);
        let token = random_hex(32);
        let mut state = self.lock();
        let session_id = loop {
            let id = format!("{prefix}-{}", &random_hex(9)[..17]);
            if !state.sessions.contains_key(&id) {
                break id;
            }
        };
        let (terminated, _) = watch::channel(false);
        let entry = SessionEntry {
            session_id: session_id.clone(),
            target: target.to_owned(),
            location: at.clone(),
            instance,
            document: resolved,
            reason: reason.map(str::to_owned),
            owner: caller.arn.clone(),
            caller: caller.clone(),
            started: SystemTime::now(),
            status: SessionStatus::Connecting,
            ended: None,
        };
        state.sessions.insert(
            session_id.clone(),
            Record {
                entry,
                token: token.clone(),
                terminated,
            },
        );
        drop(state);
        tracing::debug!(%session_id, target, "session started");
        Ok(Started {
            stream_url: self.stream_url(&session_id),
            session_id,
            token,
        })
    }

    /// `ResumeSession` served at `at`: a fresh token for a live session
    /// (the previous one stops working); `Ok(None)` when the session has
    /// ended.
    ///
    /// Errors: `DoesNotExistException` for an unknown id or a session
    /// started elsewhere; `AccessDeniedException` when
    /// `faults.refuse_resume` is set.
    pub fn resume_session(
        &self,
        at: &Location,
        session_id: &str,
    ) -> Result<Option<Started>, ApiError> {
        let mut state = self.lock();
        let record = state
            .sessions
            .get_mut(session_id)
            .filter(|r| r.entry.location == *at)
            .ok_or_else(|| ApiError::session_not_found(session_id))?;
        if self.inner.faults.refuse_resume {
            return Err(ApiError::new(
                "AccessDeniedException",
                format!(
                    "User is not authorized to perform: ssm:ResumeSession on resource: {session_id} (sim fault refuse_resume)"
                ),
            ));
        }
        if record.entry.status.is_ended() {
            return Ok(None);
        }
        record.token = random_hex(32);
        let token = record.token.clone();
        drop(state);
        Ok(Some(Started {
            stream_url: self.stream_url(session_id),
            session_id: session_id.to_owned(),
            token,
        }))
    }

    /// Ends a session wherever it was started (the sim's own shutdown and
    /// tests): marks it `Terminated` and fires its termination signal.
    /// Idempotent. Errors: `DoesNotExistException`.
    pub fn terminate(&self, session_id: &str) -> Result<(), ApiError> {
        self.terminate_where(session_id, |_| true)
    }

    /// `TerminateSession` served at `at`: [`Registry::terminate`] for a
    /// session started there; one started elsewhere does not exist here
    /// (`DoesNotExistException`).
    pub fn terminate_at(&self, at: &Location, session_id: &str) -> Result<(), ApiError> {
        self.terminate_where(session_id, |entry| entry.location == *at)
    }

    fn terminate_where(
        &self,
        session_id: &str,
        visible: impl FnOnce(&SessionEntry) -> bool,
    ) -> Result<(), ApiError> {
        let mut state = self.lock();
        if !state
            .sessions
            .get(session_id)
            .is_some_and(|r| visible(&r.entry))
        {
            return Err(ApiError::session_not_found(session_id));
        }
        Self::end(&mut state, session_id, SessionStatus::Terminated);
        Ok(())
    }

    /// Moves a live session to a terminal status, fires its signal and
    /// trims the history.
    fn end(state: &mut State, session_id: &str, status: SessionStatus) {
        let Some(record) = state.sessions.get_mut(session_id) else {
            return;
        };
        if record.entry.status.is_ended() {
            return;
        }
        record.entry.status = status;
        record.entry.ended = Some(SystemTime::now());
        record.terminated.send_replace(true);
        state.ended.push_back(session_id.to_owned());
        while state.ended.len() > HISTORY_LIMIT {
            if let Some(old) = state.ended.pop_front() {
                state.sessions.remove(&old);
            }
        }
    }

    /// The WebSocket open-frame check: `Some` only for the session's current
    /// token and only while the session has not ended. Constant-time
    /// comparison.
    pub fn authorize_open(&self, session_id: &str, token: &str) -> Option<SessionHandle> {
        let state = self.lock();
        let record = state.sessions.get(session_id)?;
        if !constant_time_eq(record.token.as_bytes(), token.as_bytes())
            || record.entry.status.is_ended()
        {
            return None;
        }
        Some(SessionHandle {
            entry: record.entry.clone(),
            terminated: record.terminated.subscribe(),
        })
    }

    /// Updates a session's status. Ended sessions stay ended; moving to
    /// `Terminated`/`Failed` records the end time and fires the signal.
    pub fn set_status(&self, session_id: &str, status: SessionStatus) {
        let mut state = self.lock();
        if status.is_ended() {
            Self::end(&mut state, session_id, status);
        } else if let Some(record) = state.sessions.get_mut(session_id)
            && !record.entry.status.is_ended()
        {
            record.entry.status = status;
        }
    }

    /// A snapshot of one session.
    pub fn get(&self, session_id: &str) -> Option<SessionEntry> {
        self.lock()
            .sessions
            .get(session_id)
            .map(|r| r.entry.clone())
    }

    /// Active (not ended) or history (ended) sessions, oldest first.
    pub fn describe(&self, active: bool) -> Vec<SessionEntry> {
        self.describe_filtered(active, &[])
    }

    /// Like [`Registry::describe`], keeping sessions that pass every filter.
    pub fn describe_filtered(&self, active: bool, filters: &[SessionFilter]) -> Vec<SessionEntry> {
        self.describe_where(active, filters, None)
    }

    /// `DescribeSessions` served at `at`: like
    /// [`Registry::describe_filtered`], of the sessions started there only.
    pub fn describe_at(
        &self,
        at: &Location,
        active: bool,
        filters: &[SessionFilter],
    ) -> Vec<SessionEntry> {
        self.describe_where(active, filters, Some(at))
    }

    fn describe_where(
        &self,
        active: bool,
        filters: &[SessionFilter],
        at: Option<&Location>,
    ) -> Vec<SessionEntry> {
        let state = self.lock();
        let mut out: Vec<SessionEntry> = state
            .sessions
            .values()
            .map(|r| &r.entry)
            .filter(|e| at.is_none_or(|at| e.location == *at))
            .filter(|e| e.status.is_ended() != active)
            .filter(|e| filters.iter().all(|f| f.matches(e)))
            .cloned()
            .collect();
        drop(state);
        out.sort_by(|a, b| {
            a.started
                .cmp(&b.started)
                .then_with(|| a.session_id.cmp(&b.session_id))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Registry {
        /// `start_session` at the home location.
        fn start_session_home(
            &self,
            caller: &Caller,
            target: &str,
            document: Option<&str>,
            params: &BTreeMap<String, Vec<String>>,
            reason: Option<&str>,
        ) -> Result<Started, ApiError> {
            self.start_session(caller, &home(), target, document, params, reason)
        }
    }

    fn registry(faults: FaultConfig) -> Registry {
        Registry::new(
            Inventory::default_instances(),
            "ws://127.0.0.1:9/".into(),
            faults,
        )
    }

    const WEB: &str = "i-0a1b2c3d4e5f60001";

    fn user(name: &str) -> Caller {
        Caller::user(name, name, &Location::default())
    }

    fn home() -> Location {
        Location::default()
    }

    #[test]
    fn start_resume_terminate() {
        let r = registry(FaultConfig::default());
        let s = r
            .start_session_home(&user("alice"), WEB, None, &BTreeMap::new(), Some("why"))
            .unwrap();
        assert!(s.session_id.starts_with("alice-"));
        assert_eq!(s.session_id.len(), "alice-".len() + 17);
        assert_eq!(
            s.stream_url,
            format!(
                "ws://127.0.0.1:9/v1/data-channel/{}?role=publish_subscribe",
                s.session_id
            )
        );
        assert!(!format!("{s:?}").contains(&s.token));
        let h = r.authorize_open(&s.session_id, &s.token).unwrap();
        assert_eq!(h.entry.status, SessionStatus::Connecting);
        assert!(r.authorize_open(&s.session_id, "nope").is_none());

        r.set_status(&s.session_id, SessionStatus::Connected);
        let resumed = r.resume_session(&home(), &s.session_id).unwrap().unwrap();
        assert_ne!(resumed.token, s.token);
        assert!(r.authorize_open(&s.session_id, &s.token).is_none());
        assert!(r.authorize_open(&s.session_id, &resumed.token).is_some());

        assert!(!*h.terminated.borrow());
        r.terminate(&s.session_id).unwrap();
        r.terminate(&s.session_id).unwrap();
        assert!(*h.terminated.borrow());
        assert!(r.authorize_open(&s.session_id, &resumed.token).is_none());
        assert_eq!(r.resume_session(&home(), &s.session_id).unwrap(), None);
        r.set_status(&s.session_id, SessionStatus::Connected);
        let e = r.get(&s.session_id).unwrap();
        assert_eq!(e.status, SessionStatus::Terminated);
        assert!(e.ended.is_some());
        assert_eq!(r.describe(false).len(), 1);
        assert!(r.describe(true).is_empty());
        assert_eq!(
            r.terminate("nope").unwrap_err().code,
            "DoesNotExistException"
        );
    }

    #[test]
    fn start_errors() {
        let r = registry(FaultConfig::default());
        let none = BTreeMap::new();
        let code = |t: &str, d: Option<&str>| {
            r.start_session_home(&user("o"), t, d, &none, None)
                .unwrap_err()
                .code
        };
        assert_eq!(code("", None), "ValidationException");
        assert_eq!(code(WEB, Some("ab")), "ValidationException");
        assert_eq!(code(WEB, Some("AWS-Nope")), "InvalidDocument");
        assert_eq!(code("i-0a1b2c3d4e5f60004", None), "TargetNotConnected");
        assert_eq!(code("i-ffffffffffffffff0", None), "TargetNotConnected");
    }

    #[test]
    fn refuse_resume_fault() {
        let r = registry(FaultConfig {
            refuse_resume: true,
            ..FaultConfig::default()
        });
        let s = r
            .start_session_home(&user("o"), WEB, None, &BTreeMap::new(), None)
            .unwrap();
        assert_eq!(
            r.resume_session(&home(), &s.session_id).unwrap_err().code,
            "AccessDeniedException"
        );
        assert!(r.authorize_open(&s.session_id, &s.token).is_some());
    }

    #[test]
    fn filters() {
        let r = registry(FaultConfig::default());
        let a = r
            .start_session_home(&user("a"), WEB, None, &BTreeMap::new(), None)
            .unwrap();
        let b = r
            .start_session_home(
                &user("b"),
                "i-0a1b2c3d4e5f60002",
                None,
                &BTreeMap::new(),
                None,
            )
            .unwrap();
        let by_owner = r.describe_filtered(true, &[SessionFilter::Owner(user("b").arn)]);
        assert_eq!(by_owner.len(), 1);
        assert_eq!(by_owner[0].session_id, b.session_id);
        let by_target = r.describe_filtered(true, &[SessionFilter::Target(WEB.into())]);
        assert_eq!(by_target[0].session_id, a.session_id);
        let later = SystemTime::now() + std::time::Duration::from_secs(60);
        assert!(
            r.describe_filtered(true, &[SessionFilter::InvokedAfter(later)])
                .is_empty()
        );
        assert_eq!(
            r.describe_filtered(true, &[SessionFilter::InvokedBefore(later)])
                .len(),
            2
        );
        r.set_status(&a.session_id, SessionStatus::Failed);
        assert_eq!(
            r.describe_filtered(false, &[SessionFilter::Status(SessionStatus::Failed)])
                .len(),
            1
        );
    }

    #[test]
    fn locations_scope_instances_and_sessions() {
        const ABROAD: &str = "i-0000000000000a002";
        let prod = Location {
            account: "222222222222".into(),
            region: "eu-west-1".into(),
        };
        let r = Registry::new(
            Inventory::new(vec![
                Instance::new(WEB),
                Instance::new(ABROAD)
                    .with_account(&prod.account)
                    .with_region(&prod.region),
            ]),
            "ws://127.0.0.1:9".into(),
            FaultConfig::default(),
        )
        .in_location(home())
        .with_accounts(["222222222222"]);
        assert!(r.hosts_account("123456789012") && r.hosts_account("222222222222"));
        assert!(!r.hosts_account("333333333333"));
        assert_eq!(r.accounts(), vec!["123456789012", "222222222222"]);
        let ids =
            |at: &Location| -> Vec<String> { r.instances_at(at).map(|i| i.id.clone()).collect() };
        assert_eq!(ids(&home()), vec![WEB]);
        assert_eq!(ids(&prod), vec![ABROAD]);
        assert!(ids(&home().in_region("eu-west-1")).is_empty());
        assert!(r.instance_at(&home(), ABROAD).is_none());
        assert_eq!(r.location_of(ABROAD), Some(prod.clone()));

        let none = BTreeMap::new();
        let e = r
            .start_session(&user("a"), &home(), ABROAD, None, &none, None)
            .unwrap_err();
        assert_eq!(e, ApiError::target_not_connected(ABROAD));
        let s = r
            .start_session(&user("a"), &prod, ABROAD, None, &none, None)
            .unwrap();
        assert_eq!(r.get(&s.session_id).unwrap().location, prod);
        assert!(r.describe_at(&home(), true, &[]).is_empty());
        assert_eq!(r.describe_at(&prod, true, &[]).len(), 1);
        assert_eq!(r.describe(true).len(), 1);
        assert_eq!(
            r.resume_session(&home(), &s.session_id).unwrap_err(),
            ApiError::session_not_found(&s.session_id)
        );
        assert_eq!(
            r.terminate_at(&home(), &s.session_id).unwrap_err(),
            ApiError::session_not_found(&s.session_id)
        );
        assert!(r.resume_session(&prod, &s.session_id).unwrap().is_some());
        r.terminate_at(&prod, &s.session_id).unwrap();
        assert_eq!(r.describe_at(&prod, false, &[]).len(), 1);
    }
}
