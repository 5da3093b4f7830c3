//! Who signed a request: the [`Caller`] behind a SigV4 access key id, and
//! the temporary credentials the sim's STS `AssumeRole` issues
//! ([`Identities`]).
//!
//! The sim checks no signatures. An access key id it did not issue stands
//! for an IAM user of the sim's home account named after the key id
//! (`arn:{partition}:iam::{account}:user/{key id}`), so tests can use any
//! plain keys. A key id it issued stands for the assumed-role session
//! (`arn:{partition}:sts::{account}:assumed-role/{role}/{session}`, in the
//! role's account, which requests with it then act in) until
//! it expires; after that, and when the request's `X-Amz-Security-Token`
//! is not the one issued with it, the request is refused as AWS refuses
//! it ([`CallerError`]). It does not own the STS wire protocol
//! ([`crate::api::sts`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rand::Rng;

use crate::registry::{Location, sanitize_owner};

/// Issued credentials kept (the earliest-expiring go first beyond this).
const ISSUED_LIMIT: usize = 10_000;

/// The default `MaxSessionDuration` of an IAM role (AWS's default: 1 h).
pub const DEFAULT_ROLE_MAX_SESSION: u32 = 3600;

/// The principal that signed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The access key id of the signature (`""` when unsigned).
    pub access_key_id: String,
    /// Its ARN: an IAM user's or an assumed-role session's. SSM shows it as
    /// a session's `Owner`.
    pub arn: String,
    /// `GetCallerIdentity`'s `UserId`: `AIDA…` for a user,
    /// `AROA…:{session name}` for a role session.
    pub user_id: String,
    /// The account it acts in: the home account for plain keys, the
    /// role's for an assumed-role session.
    pub account: String,
    /// The name SSM session ids start with: the user name, or the role
    /// session name.
    pub name: String,
    /// Present for credentials issued by the sim's `AssumeRole`.
    pub assumed: Option<AssumedRole>,
}

/// What an `AssumeRole` session carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumedRole {
    /// The role's ARN as given to `AssumeRole`.
    pub role_arn: String,
    /// The role's name (the ARN's last path segment).
    pub role_name: String,
    /// `RoleSessionName`.
    pub session_name: String,
    /// `SourceIdentity`, set once and kept through role chaining.
    pub source_identity: Option<String>,
    /// Session tags, as passed (plus transitive ones of a calling session).
    pub session_tags: Vec<SessionTag>,
    /// Keys (lower-cased) of the tags passed on to chained sessions.
    pub transitive_tag_keys: Vec<String>,
    /// When the credentials stop working.
    pub expiration: SystemTime,
}

/// One session tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTag {
    /// The key (tag keys are case-insensitive in IAM).
    pub key: String,
    /// The value.
    pub value: String,
}

impl AssumedRole {
    /// The value of session tag `key` (compared case-insensitively, as IAM
    /// compares tag keys).
    pub fn session_tag(&self, key: &str) -> Option<&str> {
        self.session_tags
            .iter()
            .find(|t| t.key.eq_ignore_ascii_case(key))
            .map(|t| t.value.as_str())
    }
}

impl Caller {
    /// An IAM user of `location`'s account named `name`.
    pub fn user(name: &str, access_key_id: &str, location: &Location) -> Self {
        Caller {
            access_key_id: access_key_id.to_owned(),
            arn: format!(
                "arn:{}:iam::{}:user/{name}",
                location.partition(),
                location.account
            ),
            user_id: unique_id("AIDA", name),
            account: location.account.clone(),
            name: name.to_owned(),
            assumed: None,
        }
    }

    /// The session's `SourceIdentity`, if any.
    pub fn source_identity(&self) -> Option<&str> {
        self.assumed.as_ref()?.source_identity.as_deref()
    }

    /// The value of session tag `key`, if any.
    pub fn session_tag(&self, key: &str) -> Option<&str> {
        self.assumed.as_ref()?.session_tag(key)
    }
}

/// Why a signed request is refused before it reaches an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerError {
    /// Issued credentials past their expiration.
    Expired,
    /// An issued key id with a missing or different session token.
    InvalidToken,
}

/// Credentials `AssumeRole` hands out.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCredentials {
    /// `ASIA` + 16.
    pub access_key_id: String,
    /// Secret (never checked: the sim verifies no signatures).
    pub secret_access_key: String,
    /// Must accompany the key id (`X-Amz-Security-Token`).
    pub session_token: String,
    /// When they expire.
    pub expiration: SystemTime,
}

impl std::fmt::Debug for IssuedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

struct Issued {
    caller: Caller,
    session_token: String,
    expiration: SystemTime,
}

/// The credentials issued so far, and the roles' `MaxSessionDuration`.
#[derive(Default)]
pub struct Identities {
    issued: Mutex<BTreeMap<String, Issued>>,
    /// 0 means [`DEFAULT_ROLE_MAX_SESSION`].
    role_max_session: AtomicU32,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities")
            .field("issued", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl Identities {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Issued>> {
        self.issued
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The `MaxSessionDuration` every role of the sim has, in seconds.
    pub fn role_max_session_duration(&self) -> u32 {
        match self.role_max_session.load(Ordering::Relaxed) {
            0 => DEFAULT_ROLE_MAX_SESSION,
            n => n,
        }
    }

    /// Sets the roles' `MaxSessionDuration` (AWS allows 3600–43200).
    pub fn set_role_max_session_duration(&self, seconds: u32) {
        self.role_max_session.store(seconds, Ordering::Relaxed);
    }

    /// The caller behind `access_key_id` (and the request's session
    /// token); unsigned requests are the user `sim-user`.
    pub fn resolve(
        &self,
        access_key_id: Option<&str>,
        session_token: Option<&str>,
        location: &Location,
    ) -> Result<Caller, CallerError> {
        let Some(key) = access_key_id.filter(|k| !k.is_empty()) else {
            return Ok(Caller::user("sim-user", "", location));
        };
        let issued = self.lock();
        match issued.get(key) {
            None => Ok(Caller::user(&sanitize_owner(key), key, location)),
            Some(i) if session_token != Some(i.session_token.as_str()) => {
                Err(CallerError::InvalidToken)
            }
            Some(i) if i.expiration <= SystemTime::now() => Err(CallerError::Expired),
            Some(i) => Ok(i.caller.clone()),
        }
    }

    /// Issues credentials for `role` (valid until its `expiration`) with a
    /// session token of `token_len` characters; the caller they stand for
    /// has `arn`, `user_id` and `account`.
    pub fn issue(
        &self,
        role: AssumedRole,
        arn: String,
        user_id: String,
        account: String,
        token_len: usize,
    ) -> IssuedCredentials {
        let expiration = role.expiration;
        let mut issued = self.lock();
        let access_key_id = loop {
            let id = format!("ASIA{}", random_chars(16, ID_ALPHABET));
            if !issued.contains_key(&id) {
                break id;
            }
        };
        let credentials = IssuedCredentials {
            access_key_id: access_key_id.clone(),
            secret_access_key: random_chars(40, SECRET_ALPHABET),
            session_token: random_chars(token_len, SECRET_ALPHABET),
            expiration,
        };
        let caller = Caller {
            access_key_id: access_key_id.clone(),
            arn,
            user_id,
            account,
            name: role.session_name.clone(),
            assumed: Some(role),
        };
        issued.insert(
            access_key_id,
            Issued {
                caller,
                session_token: credentials.session_token.clone(),
                expiration,
            },
        );
        while issued.len() > ISSUED_LIMIT {
            let oldest = issued
                .iter()
                .min_by_key(|(_, i)| i.expiration)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => issued.remove(&k),
                None => break,
            };
        }
        credentials
    }

    /// The caller issued `access_key_id`, expired or not.
    pub fn get(&self, access_key_id: &str) -> Option<Caller> {
        self.lock().get(access_key_id).map(|i| i.caller.clone())
    }

    /// Makes issued credentials expire now (tests of expiry); false when
    /// the key id was not issued.
    pub fn expire(&self, access_key_id: &str) -> bool {
        let mut issued = self.lock();
        let Some(i) = issued.get_mut(access_key_id) else {
            return false;
        };
        let past = SystemTime::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        i.expiration = past;
        if let Some(role) = &mut i.caller.assumed {
            role.expiration = past;
        }
        true
    }
}

/// Upper-case letters and digits 2–7, as AWS key and unique ids use.
const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Characters of secrets and session tokens.
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_chars(n: usize, alphabet: &[u8]) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| {
            let i = rng.random_range(0..alphabet.len());
            alphabet.get(i).copied().map_or('A', char::from)
        })
        .collect()
}

/// A stable IAM-style unique id (`AIDA…`, `AROA…`: prefix + 17) for `name`,
/// so the same user or role always has the same id.
pub fn unique_id(prefix: &str, name: &str) -> String {
    // FNV-1a, stretched over 17 characters.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut out = String::from(prefix);
    for round in 0u8..17 {
        for b in name.bytes().chain([round]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        let i = usize::try_from(hash >> 59).unwrap_or(0);
        out.push(ID_ALPHABET.get(i).copied().map_or('A', char::from));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(expiration: SystemTime) -> AssumedRole {
        AssumedRole {
            role_arn: "arn:aws:iam::123456789012:role/ops".into(),
            role_name: "ops".into(),
            session_name: "alice".into(),
            source_identity: Some("alice@example.com".into()),
            session_tags: vec![SessionTag {
                key: "SSMSessionRunAs".into(),
                value: "ops".into(),
            }],
            transitive_tag_keys: Vec::new(),
            expiration,
        }
    }

    #[test]
    fn plain_keys_are_users() {
        let ids = Identities::default();
        let loc = Location::default();
        let c = ids.resolve(Some("AKIDTEST"), None, &loc).unwrap();
        assert_eq!(c.arn, "arn:aws:iam::123456789012:user/AKIDTEST");
        assert_eq!(c.name, "AKIDTEST");
        assert!(c.user_id.starts_with("AIDA") && c.user_id.len() == 21);
        assert_eq!(c.user_id, unique_id("AIDA", "AKIDTEST"));
        assert_eq!(ids.resolve(None, None, &loc).unwrap().name, "sim-user");
    }

    #[test]
    fn issued_keys_expire_and_need_their_token() {
        let ids = Identities::default();
        let loc = Location::default();
        let later = SystemTime::now() + Duration::from_secs(900);
        let creds = ids.issue(
            role(later),
            "arn:aws:sts::123456789012:assumed-role/ops/alice".into(),
            "AROAX:alice".into(),
            "123456789012".into(),
            700,
        );
        assert!(creds.access_key_id.starts_with("ASIA") && creds.access_key_id.len() == 20);
        assert!(!format!("{creds:?}").contains(&creds.secret_access_key));
        assert_eq!(creds.session_token.len(), 700);
        let key = Some(creds.access_key_id.as_str());
        let token = Some(creds.session_token.as_str());
        let c = ids.resolve(key, token, &loc).unwrap();
        assert_eq!(c.name, "alice");
        assert_eq!(c.session_tag("ssmsessionrunas"), Some("ops"));
        assert_eq!(c.source_identity(), Some("alice@example.com"));
        assert_eq!(ids.resolve(key, None, &loc), Err(CallerError::InvalidToken));
        assert!(ids.expire(&creds.access_key_id));
        assert!(!ids.expire("ASIANOPE"));
        assert_eq!(ids.resolve(key, token, &loc), Err(CallerError::Expired));
        assert!(ids.get(&creds.access_key_id).is_some());
    }

    #[test]
    fn role_max_session() {
        let ids = Identities::default();
        assert_eq!(ids.role_max_session_duration(), 3600);
        ids.set_role_max_session_duration(43_200);
        assert_eq!(ids.role_max_session_duration(), 43_200);
    }
}
