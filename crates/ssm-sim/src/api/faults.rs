//! API fault injection and call counting: tests make an operation answer
//! an AWS error (throttling, an internal error, …) for the next N calls or
//! until cleared, and read how often each operation was called.
//!
//! Operations are named as AWS names them on the wire: the part after the
//! dot of `X-Amz-Target` for the JSON services (`StartSession`,
//! `GetResources`), the query `Action` for STS (`AssumeRole`). The router
//! counts every request (refused ones included) and consults
//! [`ApiFaults::on_call`] before dispatching it; the injected error is
//! rendered in the protocol of the request with [`status_for`]'s HTTP
//! status. It does not own the data-channel faults ([`crate::faults`]).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use serde::Deserialize;

/// One injected error: what to answer and how many more times.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Injected {
    code: String,
    message: String,
    /// `None`: until cleared.
    remaining: Option<u32>,
}

/// An error an operation must answer now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectedError {
    /// The AWS error code (`ThrottlingException`, …).
    pub code: String,
    /// The message.
    pub message: String,
    /// The HTTP status ([`status_for`] the code).
    pub status: u16,
}

/// One `[[api_faults]]` entry of the sim's config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiFaultRule {
    /// The operation (`GetResources`, `StartSession`, `AssumeRole`, …).
    pub operation: String,
    /// The AWS error code to answer.
    pub code: String,
    /// Its message.
    #[serde(default)]
    pub message: String,
    /// How many calls fail; absent: all of them.
    #[serde(default)]
    pub times: Option<u32>,
}

#[derive(Debug, Default)]
struct State {
    injected: BTreeMap<String, Injected>,
    calls: BTreeMap<String, u64>,
}

/// Injected API errors and per-operation call counts, shared by every
/// clone of a [`crate::registry::Registry`].
#[derive(Debug, Default)]
pub struct ApiFaults {
    state: Mutex<State>,
}

/// The HTTP status AWS uses for an error code: 500 for internal errors,
/// 503 for unavailability, 403 for STS's (query protocol) `AccessDenied`,
/// `ExpiredToken`, `InvalidClientTokenId` and its modelled 403s, else 400
/// (throttling codes included: `ThrottlingException`, `ThrottledException`,
/// `Throttling` are 400s; so is the JSON services' `AccessDeniedException`).
pub fn status_for(code: &str) -> u16 {
    match code {
        "InternalServerError"
        | "InternalServiceException"
        | "InternalServiceError"
        | "InternalFailure"
        | "InternalError"
        | "InternalErrorException" => 500,
        "ServiceUnavailable" | "ServiceUnavailableException" => 503,
        "AccessDenied"
        | "ExpiredToken"
        | "InvalidClientTokenId"
        | "RegionDisabledException"
        | "IDPRejectedClaim"
        | "SessionDurationEscalationException" => 403,
        _ => 400,
    }
}

impl ApiFaults {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes `operation` answer `code`/`message` for the next `times` calls
    /// (`None`: until [`ApiFaults::clear`]). Replaces an earlier injection
    /// for the same operation; `Some(0)` injects nothing.
    pub fn fail(&self, operation: &str, code: &str, message: &str, times: Option<u32>) {
        let mut state = self.lock();
        if times == Some(0) {
            state.injected.remove(operation);
            return;
        }
        state.injected.insert(
            operation.to_owned(),
            Injected {
                code: code.to_owned(),
                message: message.to_owned(),
                remaining: times,
            },
        );
    }

    /// Stops injecting errors into `operation`.
    pub fn clear(&self, operation: &str) {
        self.lock().injected.remove(operation);
    }

    /// Stops injecting errors into every operation.
    pub fn clear_all(&self) {
        self.lock().injected.clear();
    }

    /// Applies config-file rules.
    pub fn apply(&self, rules: &[ApiFaultRule]) {
        for r in rules {
            self.fail(&r.operation, &r.code, &r.message, r.times);
        }
    }

    /// Counts one call of `operation` and returns the error it must answer,
    /// if one is injected (using up one of its `times`).
    pub fn on_call(&self, operation: &str) -> Option<InjectedError> {
        let mut state = self.lock();
        *state.calls.entry(operation.to_owned()).or_default() += 1;
        let injected = state.injected.get_mut(operation)?;
        let out = InjectedError {
            status: status_for(&injected.code),
            code: injected.code.clone(),
            message: injected.message.clone(),
        };
        match &mut injected.remaining {
            None => {}
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                state.injected.remove(operation);
            }
        }
        Some(out)
    }

    /// How many requests named `operation` arrived.
    pub fn calls(&self, operation: &str) -> u64 {
        self.lock().calls.get(operation).copied().unwrap_or(0)
    }

    /// Calls per operation so far.
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.lock().calls.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_clear() {
        let f = ApiFaults::default();
        assert!(f.on_call("GetResources").is_none());
        f.fail(
            "GetResources",
            "ThrottledException",
            "Rate exceeded",
            Some(2),
        );
        let e = f.on_call("GetResources").unwrap();
        assert_eq!(
            (e.code.as_str(), e.message.as_str(), e.status),
            ("ThrottledException", "Rate exceeded", 400)
        );
        assert!(f.on_call("StartSession").is_none());
        assert!(f.on_call("GetResources").is_some());
        assert!(f.on_call("GetResources").is_none());
        f.fail("StartSession", "InternalServerError", "boom", None);
        for _ in 0..3 {
            assert_eq!(f.on_call("StartSession").unwrap().status, 500);
        }
        f.clear("StartSession");
        assert!(f.on_call("StartSession").is_none());
        f.fail("X", "Y", "", Some(0));
        assert!(f.on_call("X").is_none());
        assert_eq!(f.calls("GetResources"), 4);
        assert_eq!(f.calls("StartSession"), 5);
        assert_eq!(f.calls("Nope"), 0);
        assert_eq!(f.call_counts().len(), 3);
    }

    #[test]
    fn statuses() {
        assert_eq!(status_for("ThrottlingException"), 400);
        assert_eq!(status_for("InternalServiceException"), 500);
        assert_eq!(status_for("ServiceUnavailable"), 503);
        assert_eq!(status_for("AccessDenied"), 403);
        assert_eq!(status_for("AccessDeniedException"), 400);
    }
}
