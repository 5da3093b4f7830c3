//! EC2 tag lookups coalesced into few, paced `GetResources` calls.
//!
//! Each cold `i-…` lookup joins the open batch; a batch is sent at its
//! reserved slot or holds [`MAX_ARNS_PER_CALL`] ids, whichever comes
//! last (a full batch closes to new ids and still waits for its slot).
//! Slots come from a token bucket of [`CALLS_PER_SECOND`] with a burst of
//! [`BURST`], so a burst of session opens to many different instances
//! costs one call per 100 of them and never more than the bucket allows:
//! 500 cold opens at once are 5 calls.
//!
//! AWS does not publish a fixed default rate for `GetResources` in the
//! sources checked (API reference, Service Quotas docs, public issues;
//! the service answers `ThrottledException` "Rate exceeded" when it
//! throttles), so the bucket is the gateway's own budget, per replica,
//! deliberately low; the SDK's standard retry with backoff handles any
//! throttling that still happens.
//!
//! Every batch runs in its own task: a caller that gives up (its ssh
//! client left) never strands the others waiting on the same call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::cache::{Tags, lock};
use crate::aws::tags::MAX_ARNS_PER_CALL;
use crate::aws::{SsmApi, SsmError, TagMap};

/// The gateway's budget of `GetResources` calls, per second.
pub const CALLS_PER_SECOND: u32 = 10;
/// Calls allowed at once before the pace applies.
pub const BURST: u32 = 10;
/// How long a new batch waits for more ids before it is sent.
const GATHER: Duration = Duration::from_millis(5);

type Outcome = Result<Arc<HashMap<String, TagMap>>, SsmError>;

/// One call's worth of ids and, once sent, its answer.
struct Batch {
    ids: Mutex<Vec<String>>,
    done: watch::Sender<Option<Outcome>>,
}

struct State {
    /// The batch still taking ids.
    open: Option<Arc<Batch>>,
    /// The bucket's theoretical arrival time (GCRA).
    tat: Instant,
}

/// See the module docs.
pub(crate) struct Ec2Batcher {
    state: Mutex<State>,
    interval: Duration,
    tolerance: Duration,
}

impl Ec2Batcher {
    pub(crate) fn new() -> Self {
        let interval = Duration::from_secs(1) / CALLS_PER_SECOND;
        Ec2Batcher {
            state: Mutex::new(State {
                open: None,
                tat: Instant::now(),
            }),
            interval,
            tolerance: interval * BURST.saturating_sub(1),
        }
    }

    /// When the next call may go: no earlier than `GATHER` from now, and
    /// as the bucket allows.
    fn reserve(&self, state: &mut State) -> Instant {
        let now = Instant::now();
        let allowed = state.tat.checked_sub(self.tolerance).unwrap_or(now);
        let slot = allowed.max(now + GATHER);
        state.tat = state.tat.max(slot) + self.interval;
        slot
    }

    /// `id`'s tags (an EC2 instance id).
    pub(crate) async fn get(
        self: &Arc<Self>,
        api: &Arc<dyn SsmApi>,
        id: &str,
    ) -> Result<Tags, SsmError> {
        let mut answer = {
            let mut state = lock(&self.state);
            let joined = state.open.as_ref().and_then(|batch| {
                let mut ids = lock(&batch.ids);
                (ids.len() < MAX_ARNS_PER_CALL).then(|| {
                    ids.push(id.to_owned());
                    batch.done.subscribe()
                })
            });
            match joined {
                Some(answer) => answer,
                None => {
                    let (done, answer) = watch::channel(None);
                    let batch = Arc::new(Batch {
                        ids: Mutex::new(vec![id.to_owned()]),
                        done,
                    });
                    state.open = Some(batch.clone());
                    let slot = self.reserve(&mut state);
                    tokio::spawn(self.clone().send_at(slot, batch, api.clone()));
                    answer
                }
            }
        };
        let outcome = answer
            .wait_for(Option::is_some)
            .await
            .map_err(|_| SsmError::Other {
                service: crate::aws::Service::Tagging,
                code: "ClientError".to_owned(),
                message: "the tag lookup was abandoned".to_owned(),
            })?
            .clone();
        match outcome {
            Some(Ok(tags)) => Ok(Arc::new(tags.get(id).cloned().unwrap_or_default())),
            Some(Err(e)) => Err(e),
            // `wait_for` only returns once the value is `Some`.
            None => Err(SsmError::Other {
                service: crate::aws::Service::Tagging,
                code: "ClientError".to_owned(),
                message: "the tag lookup ended without an answer".to_owned(),
            }),
        }
    }

    async fn send_at(self: Arc<Self>, slot: Instant, batch: Arc<Batch>, api: Arc<dyn SsmApi>) {
        tokio::time::sleep_until(slot.into()).await;
        {
            let mut state = lock(&self.state);
            if state.open.as_ref().is_some_and(|b| Arc::ptr_eq(b, &batch)) {
                state.open = None;
            }
        }
        let ids = std::mem::take(&mut *lock(&batch.ids));
        let outcome = api.ec2_instance_tags(&ids).await.map(Arc::new);
        if let Err(e) = &outcome {
            tracing::warn!(instances = ids.len(), error = %e, "EC2 tags could not be read");
        }
        batch.done.send_replace(Some(outcome));
    }
}
