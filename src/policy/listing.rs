//! [`PolicyEngine::permitted`]: which of many targets a user may open (the
//! target picker). The user's entities, the context and the policy slice
//! are built once; the targets are split into chunks evaluated on scoped
//! threads (one entity store per chunk), so a listing of 10,000 targets
//! takes a fraction of a second.

use std::collections::HashSet;

use cedar_policy::{Context, Entities, Entity, PolicySet};

use super::{Action, ContextInput, PolicyEngine, Principal};
use crate::inventory::Target;

/// Targets per thread below which a listing stays on the calling thread.
const MIN_CHUNK: usize = 1000;
/// Most threads one listing uses.
const MAX_THREADS: usize = 8;

/// What every chunk shares.
struct Shared<'a> {
    user: &'a str,
    user_entities: &'a [Entity],
    action: Action,
    contexts: &'a [Context],
    policies: &'a PolicySet,
}

impl PolicyEngine {
    /// The targets `principal` may open with `action` in context `ctx`
    /// (the target picker), in the order given. When `ctx` has no reason,
    /// a target that the example reason would open is included: the user
    /// will be asked for a reason when opening it. CPU-bound (about 25 µs
    /// per target, spread over up to 8 threads): call it from
    /// `spawn_blocking` for large fleets.
    pub fn permitted<'t>(
        &self,
        principal: &Principal<'_>,
        action: Action,
        targets: &'t [Target],
        ctx: &ContextInput,
    ) -> Vec<&'t Target> {
        let snap = self.snapshot();
        let slice = snap.slice(action, &principal.user.name, &principal.user.groups);
        let user_entities = match self.vocab.principal(principal) {
            Ok(user) => user,
            Err(e) => {
                tracing::warn!(user = %principal.user.name, error = %e, "cannot evaluate policies");
                return Vec::new();
            }
        };
        let with_reason = if slice.reason_matters {
            self.with_example_reason(ctx)
        } else {
            None
        };
        let contexts: Vec<Context> = [Some(ctx.clone()), with_reason]
            .iter()
            .flatten()
            .filter_map(|c| self.vocab.context(c).ok())
            .collect();
        let shared = Shared {
            user: &principal.user.name,
            user_entities: &user_entities,
            action,
            contexts: &contexts,
            policies: &slice.set,
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(targets.len() / MIN_CHUNK)
            .clamp(1, MAX_THREADS);
        if threads == 1 {
            return self.permitted_chunk(&shared, targets);
        }
        let chunk = targets.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = targets
                .chunks(chunk)
                .map(|part| scope.spawn(|| self.permitted_chunk(&shared, part)))
                .collect();
            let mut out = Vec::new();
            for handle in handles {
                match handle.join() {
                    Ok(part) => out.extend(part),
                    Err(_) => {
                        tracing::error!("a target listing thread failed; its targets are left out")
                    }
                }
            }
            out
        })
    }

    /// One chunk: one entity store for its targets (a repeated id is
    /// evaluated with its first attributes), then one decision per target.
    fn permitted_chunk<'t>(&self, shared: &Shared<'_>, targets: &'t [Target]) -> Vec<&'t Target> {
        let mut seen = HashSet::with_capacity(targets.len());
        let mut failed = HashSet::new();
        let mut all = shared.user_entities.to_vec();
        all.reserve(targets.len());
        for target in targets {
            if seen.insert(target.id.as_str()) {
                match self.vocab.target(target) {
                    Ok(entity) => all.push(entity),
                    Err(e) => {
                        tracing::warn!(target = %target.id, error = %e, "target left out of the listing");
                        failed.insert(target.id.as_str());
                    }
                }
            }
        }
        let entities = match Entities::from_entities(all, None) {
            Ok(entities) => entities,
            Err(e) => {
                tracing::warn!(user = %shared.user, error = %e, "cannot evaluate policies");
                return Vec::new();
            }
        };
        targets
            .iter()
            .filter(|target| {
                !failed.contains(target.id.as_str())
                    && shared.contexts.iter().any(|context| {
                        self.vocab
                            .request(shared.user, shared.action, &target.id, context.clone())
                            .is_ok_and(|request| {
                                self.authorizer
                                    .is_authorized(&request, shared.policies, &entities)
                                    .decision()
                                    == cedar_policy::Decision::Allow
                            })
                    })
            })
            .collect()
    }
}
