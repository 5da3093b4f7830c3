//! The inventory's caches: the full `DescribeInstanceInformation` listing
//! and each instance's tags, each kept for a TTL (`[inventory]
//! cache_secs`), so cached tags are never older than that.
//!
//! Both are single-flight: when an entry is stale, one caller fetches it
//! and concurrent callers wait for that result instead of calling AWS
//! themselves (no thundering herd after expiry). A failed fetch is not
//! cached; the next caller tries again.
//!
//! Tags fail closed: any error reading them (throttling, access denied,
//! timeout, even "no such resource") is an error for the caller, never
//! an empty tag set. EC2 instances' tags go through [`Ec2Batcher`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::ec2_batch::Ec2Batcher;
use crate::aws::{InstanceInfo, SsmApi, SsmError};

/// One instance's tags.
pub(crate) type Tags = Arc<BTreeMap<String, String>>;

/// The full listing, with the time it was fetched.
#[derive(Clone)]
struct Listing {
    fetched: Instant,
    instances: Arc<Vec<InstanceInfo>>,
}

/// The cached `DescribeInstanceInformation` listing.
pub(crate) struct ListingCache {
    current: Mutex<Option<Listing>>,
    /// Held by the one caller refreshing the listing.
    refresh: tokio::sync::Mutex<()>,
}

impl ListingCache {
    pub(crate) fn new() -> Self {
        ListingCache {
            current: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self, max_age: Duration) -> Option<Arc<Vec<InstanceInfo>>> {
        lock(&self.current)
            .as_ref()
            .filter(|l| l.fetched.elapsed() < max_age)
            .map(|l| l.instances.clone())
    }

    /// The listing, fetched again if it is older than `max_age`.
    pub(crate) async fn get(
        &self,
        api: &dyn SsmApi,
        max_age: Duration,
    ) -> Result<Arc<Vec<InstanceInfo>>, SsmError> {
        if let Some(instances) = self.fresh(max_age) {
            return Ok(instances);
        }
        let _refreshing = self.refresh.lock().await;
        // Whoever held the lock before us may have refreshed it.
        if let Some(instances) = self.fresh(max_age) {
            return Ok(instances);
        }
        let instances = Arc::new(api.describe_instances().await?);
        tracing::debug!(instances = instances.len(), "inventory listing refreshed");
        *lock(&self.current) = Some(Listing {
            fetched: Instant::now(),
            instances: instances.clone(),
        });
        Ok(instances)
    }
}

/// One instance's tags: filled once by whoever gets there first.
struct TagEntry {
    created: Instant,
    cell: Arc<OnceCell<Tags>>,
}

/// Tags per instance id.
pub(crate) struct TagCache {
    ttl: Duration,
    ec2: Arc<Ec2Batcher>,
    entries: Mutex<HashMap<String, TagEntry>>,
    /// Sweep expired entries when the map grows past this.
    sweep_at: Mutex<usize>,
}

/// Smallest map size that triggers a sweep of expired entries.
const MIN_SWEEP: usize = 1024;

impl TagCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        TagCache {
            ttl,
            ec2: Arc::new(Ec2Batcher::new()),
            entries: Mutex::new(HashMap::new()),
            sweep_at: Mutex::new(MIN_SWEEP),
        }
    }

    /// The cell holding `id`'s tags, replaced when expired.
    fn cell(&self, id: &str) -> Arc<OnceCell<Tags>> {
        let mut entries = lock(&self.entries);
        if let Some(entry) = entries.get(id)
            && entry.created.elapsed() < self.ttl
        {
            return entry.cell.clone();
        }
        let mut sweep_at = lock(&self.sweep_at);
        if entries.len() >= *sweep_at {
            let ttl = self.ttl;
            entries.retain(|_, e| e.created.elapsed() < ttl);
            *sweep_at = (entries.len() * 2).max(MIN_SWEEP);
        }
        drop(sweep_at);
        let cell = Arc::new(OnceCell::new());
        entries.insert(
            id.to_owned(),
            TagEntry {
                created: Instant::now(),
                cell: cell.clone(),
            },
        );
        cell
    }

    /// `id`'s tags, from the cache, `ListTagsForResource` (`mi-…`) or
    /// the EC2 batcher (`i-…`).
    pub(crate) async fn get(&self, api: &Arc<dyn SsmApi>, id: &str) -> Result<Tags, SsmError> {
        let cell = self.cell(id);
        let tags = cell
            .get_or_try_init(|| async {
                if id.starts_with("mi-") {
                    Ok(Arc::new(api.managed_instance_tags(id).await?))
                } else {
                    self.ec2.get(api, id).await
                }
            })
            .await?;
        Ok(tags.clone())
    }
}

/// Locks a std mutex; the data it guards stays consistent even if a holder
/// panicked (every critical section is a single assignment or lookup).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
