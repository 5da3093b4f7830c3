//! [`PolicyEngine`]: holds the current validated policy set (swapped whole
//! on reload, so a decision always sees one consistent set) and answers
//! [`AuthzRequest`]s with a [`Decision`]: deny by default, the deciding
//! forbid's `@message` for the user, and the "denied only for lack of a
//! reason" check described in the [module docs](super).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use cedar_policy::{Authorizer, Entities, Entity, Response};

use super::entities::{EntityError, Vocabulary};
use super::loader::{self, PolicyInfo, PolicySnapshot, Slice};
use super::{Action, AuthzRequest, ContextInput, Decision, PolicyError, Principal, Problem};
use crate::config::PolicyConfig;
use crate::inventory::Target;

use crate::config::DEFAULT_EXAMPLE_REASON;

/// The Cedar policy engine; share it with an `Arc`.
pub struct PolicyEngine {
    dir: PathBuf,
    example_reason: String,
    pub(super) vocab: Vocabulary,
    current: RwLock<Arc<PolicySnapshot>>,
    generation: AtomicU64,
    last_error: Mutex<Option<String>>,
    pub(super) authorizer: Authorizer,
}

/// What a successful reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// Policies now in force.
    pub policies: usize,
    /// Policy files read.
    pub files: usize,
    /// Whether the files' contents differ from the previous set's.
    pub changed: bool,
    /// Validator warnings of the new set.
    pub warnings: Vec<String>,
}

/// One evaluation's raw result.
struct Outcome {
    allowed: bool,
    determining: Vec<String>,
    errors: Vec<String>,
}

impl PolicyEngine {
    /// Loads and validates `dir` (schema + `*.cedar`), with the default
    /// example reason.
    pub fn load(dir: &Path) -> Result<PolicyEngine, PolicyError> {
        Self::load_with(dir, DEFAULT_EXAMPLE_REASON)
    }

    /// Like [`PolicyEngine::load`], trying `example_reason` when a request
    /// without a reason is denied.
    pub fn load_with(dir: &Path, example_reason: &str) -> Result<PolicyEngine, PolicyError> {
        let vocab = vocabulary(dir)?;
        let snapshot = loader::load_dir(dir, &vocab)?;
        Ok(Self::from_snapshot(vocab, snapshot, example_reason))
    }

    /// Loads the directory and example reason of a config's `[policy]`.
    pub fn from_config(cfg: &PolicyConfig) -> Result<PolicyEngine, PolicyError> {
        Self::load_with(&cfg.dir, &cfg.example_reason)
    }

    /// An engine over an already loaded snapshot.
    pub(crate) fn from_snapshot(
        vocab: Vocabulary,
        snapshot: PolicySnapshot,
        example_reason: &str,
    ) -> PolicyEngine {
        PolicyEngine {
            dir: snapshot.dir.clone(),
            example_reason: example_reason.to_owned(),
            vocab,
            current: RwLock::new(Arc::new(snapshot)),
            generation: AtomicU64::new(1),
            last_error: Mutex::new(None),
            authorizer: Authorizer::new(),
        }
    }

    /// Re-reads the directory. On success the new set replaces the old one
    /// at once (decisions in flight finish with the old one); on error the
    /// previous set stays in force and the error is remembered
    /// ([`PolicyEngine::last_error`]).
    pub fn reload(&self) -> Result<ReloadOutcome, PolicyError> {
        match loader::load_dir(&self.dir, &self.vocab) {
            Ok(new) => {
                let outcome = ReloadOutcome {
                    policies: new.policies.len(),
                    files: new.files.len(),
                    changed: new.digest != self.snapshot().digest,
                    warnings: new.warnings.clone(),
                };
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
                self.generation.fetch_add(1, Ordering::SeqCst);
                *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                Ok(outcome)
            }
            Err(e) => {
                *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// The policy directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The set in force.
    pub fn snapshot(&self) -> Arc<PolicySnapshot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Counts successful loads (1 after [`PolicyEngine::load`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// The error of the last reload, if it failed.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The reason tried for [`Decision::needs_reason`].
    pub fn example_reason(&self) -> &str {
        &self.example_reason
    }

    /// What is known about policy `id` in the set in force.
    pub fn policy_info(&self, id: &str) -> Option<PolicyInfo> {
        self.snapshot().info(id).cloned()
    }

    /// Decides one request and logs the decision (user, action, target,
    /// document, outcome, determining policies). Never fails: a request
    /// that cannot be turned into Cedar terms is denied with the error in
    /// [`Decision::errors`].
    pub fn authorize(&self, req: &AuthzRequest<'_>) -> Decision {
        let started = std::time::Instant::now();
        let decision = self.decide(req);
        let (allowed, errors) = (decision.allowed, !decision.errors.is_empty());
        crate::ops::metrics::policy_decision(
            req.action.as_str(),
            allowed,
            errors,
            started.elapsed(),
        );
        tracing::info!(
            user = %req.principal.user.name,
            action = %req.action,
            target = %req.target.id,
            document = %req.context.document,
            reason = req.context.given_reason().is_some(),
            allowed = decision.allowed,
            needs_reason = decision.needs_reason,
            policies = %decision.determining_policies.join(","),
            errors = decision.errors.len(),
            "policy decision"
        );
        decision
    }

    /// [`PolicyEngine::authorize`] without the log line (for tools).
    pub fn decide(&self, req: &AuthzRequest<'_>) -> Decision {
        let snap = self.snapshot();
        match self.prepare(&req.principal, req.target) {
            Ok(entities) => self.decide_with(&snap, req, &entities),
            Err(e) => Decision {
                allowed: false,
                determining_policies: Vec::new(),
                message: default_message(req),
                needs_reason: false,
                errors: vec![e.to_string()],
                run_as: None,
            },
        }
    }

    /// The entity store for one request.
    fn prepare(&self, principal: &Principal<'_>, target: &Target) -> Result<Entities, EntityError> {
        let user = self.vocab.principal(principal)?;
        entities_with(&user, self.vocab.target(target)?)
    }

    /// `ctx` with the example reason, when it has no reason.
    pub(super) fn with_example_reason(&self, ctx: &ContextInput) -> Option<ContextInput> {
        (ctx.given_reason().is_none() && !self.example_reason.is_empty()).then(|| ContextInput {
            reason: Some(self.example_reason.clone()),
            ..ctx.clone()
        })
    }

    fn evaluate(
        &self,
        snap: &PolicySnapshot,
        slice: &Slice,
        req: &AuthzRequest<'_>,
        context: &ContextInput,
        entities: &Entities,
    ) -> Result<Outcome, EntityError> {
        let context = self.vocab.context(context)?;
        let request = self.vocab.request(
            &req.principal.user.name,
            req.action,
            &req.target.id,
            context,
        )?;
        let response: Response = self
            .authorizer
            .is_authorized(&request, &slice.set, entities);
        let mut determining: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        determining.sort_by_key(|id| snap.position(id));
        let errors = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        Ok(Outcome {
            allowed: response.decision() == cedar_policy::Decision::Allow,
            determining,
            errors,
        })
    }

    fn decide_with(
        &self,
        snap: &PolicySnapshot,
        req: &AuthzRequest<'_>,
        entities: &Entities,
    ) -> Decision {
        let user = req.principal.user;
        let slice = snap.slice(req.action, &user.name, &user.groups);
        let first = match self.evaluate(snap, &slice, req, &req.context, entities) {
            Ok(outcome) => outcome,
            Err(e) => {
                return Decision {
                    allowed: false,
                    determining_policies: Vec::new(),
                    message: default_message(req),
                    needs_reason: false,
                    errors: vec![e.to_string()],
                    run_as: None,
                };
            }
        };
        if first.allowed {
            let mut run_as: Vec<&str> = first
                .determining
                .iter()
                .filter_map(|id| snap.info(id)?.run_as.as_deref())
                .collect();
            run_as.sort_unstable();
            run_as.dedup();
            if run_as.len() > 1 {
                return Decision {
                    allowed: false,
                    message: format!(
                        "the policies that permit this ({}) name different @run_as users ({}); ask an administrator to make them agree",
                        first.determining.join(", "),
                        run_as.join(", ")
                    ),
                    determining_policies: first.determining,
                    needs_reason: false,
                    errors: first.errors,
                    run_as: None,
                };
            }
            return Decision {
                allowed: true,
                message: format!("permitted by {}", first.determining.join(", ")),
                run_as: run_as.first().map(|u| (*u).to_owned()),
                determining_policies: first.determining,
                needs_reason: false,
                errors: first.errors,
            };
        }
        let denial = deny_message(snap, req, &first.determining);
        // Would a reason help? Only if some policy here can see one.
        let needs_reason = slice.reason_matters
            && self
                .with_example_reason(&req.context)
                .and_then(|ctx| self.evaluate(snap, &slice, req, &ctx, entities).ok())
                .is_some_and(|o| o.allowed);
        let message = if needs_reason {
            format!(
                "{}. This request needs a reason: {}",
                denial.trim_end_matches('.'),
                crate::request::grant::reason_advice(req.action, &req.principal.user.name)
            )
        } else {
            denial
        };
        Decision {
            allowed: false,
            determining_policies: first.determining,
            message,
            needs_reason,
            errors: first.errors,
            run_as: None,
        }
    }
}

/// The vocabulary, or a problem naming `dir` (cannot happen in practice).
fn vocabulary(dir: &Path) -> Result<Vocabulary, PolicyError> {
    Vocabulary::new().map_err(|e| PolicyError::Invalid {
        problems: vec![Problem::in_file(dir, e.to_string())],
    })
}

/// The user, their groups and one target, as an entity store.
fn entities_with(user: &[Entity], target: Entity) -> Result<Entities, EntityError> {
    Entities::from_entities(user.iter().cloned().chain([target]), None)
        .map_err(|e| EntityError::Entities(e.to_string()))
}

/// The deciding forbids' `@message`s (each once, in load order), else the
/// default message.
fn deny_message(snap: &PolicySnapshot, req: &AuthzRequest<'_>, determining: &[String]) -> String {
    let mut seen = HashSet::new();
    let messages: Vec<&str> = determining
        .iter()
        .filter_map(|id| snap.info(id))
        .filter(|info| info.effect == cedar_policy::Effect::Forbid)
        .filter_map(|info| info.message.as_deref())
        .filter(|m| seen.insert(*m))
        .collect();
    if messages.is_empty() {
        default_message(req)
    } else {
        messages.join("; ")
    }
}

/// "no policy permits alice to open a shell on i-… (web-1)".
pub fn default_message(req: &AuthzRequest<'_>) -> String {
    let target = &req.target;
    let on = if target.display_name() == target.id {
        target.id.clone()
    } else {
        format!("{} ({})", target.id, target.display_name())
    };
    let port = req.context.parameters.get("portNumber");
    let what = match (req.action, port) {
        (Action::Shell, _) => format!("open a shell on {on}"),
        (Action::Exec, _) => format!("run commands on {on}"),
        (Action::PortForward, Some(port)) => format!("forward to port {port} of {on}"),
        (Action::PortForward, None) => format!("forward ports of {on}"),
        (Action::Ssh, _) => format!("use ssh (ProxyJump) to {on}"),
    };
    format!("no policy permits {} to {what}", req.principal.user.name)
}
