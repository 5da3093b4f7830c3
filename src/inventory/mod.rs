//! Resolving what the user typed (`ssh alice+TARGET@gateway`) to one SSM
//! managed instance, and listing instances for the picker.
//!
//! A spec that looks like an instance id (`i-…`, `mi-…`) matches by id
//! only. Anything else matches names exactly, ignoring case: the `Name`
//! tag (one filtered `DescribeInstanceInformation` call, as scales on real
//! AWS), the agent's computer name and the hybrid activation's name (from
//! the cached full listing). Nothing else resolves: an IP address or DNS
//! name reaches an instance only if one literally has that name, so the
//! gateway never becomes an open proxy.
//!
//! Caching: see [`cache`]. The listing and each instance's tags are kept
//! for the inventory's TTL. Tags come from SSM for hybrid nodes and from
//! the Resource Groups Tagging API for EC2 instances (see
//! [`crate::aws::tags`]); a target whose tags cannot be read is refused
//! ([`ResolveError::Tags`]), never treated as untagged.

mod cache;
mod ec2_batch;
pub mod fleet;

pub use fleet::{Fleet, Member};

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::aws::{InstanceInfo, SsmApi, SsmError};
use cache::{ListingCache, TagCache};

/// How many hybrid nodes' `ListTagsForResource` calls run at once (EC2
/// lookups are batched, see [`ec2_batch`]).
pub const TAG_CONCURRENCY: usize = 16;
/// An unknown instance id refreshes the listing if it is older than this
/// (or the TTL, if shorter): new instances show up without waiting for the
/// TTL, and a stream of made-up ids costs at most one listing per period.
pub const MISS_REFRESH_AFTER: Duration = Duration::from_secs(10);
/// Longest spec considered (the `Name` tag's limit is 256 characters).
const MAX_SPEC_CHARS: usize = 256;
/// Longest spec quoted back in an error.
const MAX_QUOTED_CHARS: usize = 80;

/// A resolved managed instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `i-…` or `mi-…`.
    pub id: String,
    /// The account it is in: its `[[aws.accounts]]` name, or
    /// [`DEFAULT_ACCOUNT`] when none are configured.
    pub account: String,
    /// Its region (empty when the SDK's configuration names none).
    pub region: String,
    /// The `Name` tag, else the hybrid activation's name.
    pub name: Option<String>,
    /// The host name the agent reports.
    pub computer_name: Option<String>,
    /// `Online`, `ConnectionLost` or `Inactive`.
    pub ping_status: String,
    /// `Linux`, `Windows` or `MacOS`.
    pub platform_type: String,
    /// e.g. `Amazon Linux`.
    pub platform_name: String,
    /// e.g. `2023`.
    pub platform_version: String,
    /// `EC2Instance` or `ManagedInstance`.
    pub resource_type: String,
    /// The SSM agent's version.
    pub agent_version: String,
    /// The address the agent reports (informational; never dialled).
    pub ip_address: Option<String>,
    /// When the agent last pinged SSM.
    pub last_ping: Option<SystemTime>,
    /// The instance's tags.
    pub tags: BTreeMap<String, String>,
}

impl Target {
    fn new(at: &Location, info: &InstanceInfo, tags: &BTreeMap<String, String>) -> Self {
        Target {
            id: info.id.clone(),
            account: at.account.clone(),
            region: at.region.clone(),
            name: tags
                .get("Name")
                .filter(|n| !n.is_empty())
                .cloned()
                .or_else(|| info.name.clone()),
            computer_name: info.computer_name.clone(),
            ping_status: info.ping_status.clone(),
            platform_type: info.platform_type.clone(),
            platform_name: info.platform_name.clone(),
            platform_version: info.platform_version.clone(),
            resource_type: info.resource_type.clone(),
            agent_version: info.agent_version.clone(),
            ip_address: info.ip_address.clone(),
            last_ping: info.last_ping,
            tags: tags.clone(),
        }
    }

    /// Whether the agent is connected (`PingStatus` `Online`); sessions to
    /// other targets fail with `TargetNotConnected`.
    pub fn is_online(&self) -> bool {
        self.ping_status == "Online"
    }

    /// The name to show: the name, else the computer name, else the id.
    pub fn display_name(&self) -> &str {
        self.name
            .as_deref()
            .or(self.computer_name.as_deref())
            .unwrap_or(&self.id)
    }
}

/// Why a spec did not resolve to exactly one instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// No managed instance has this id or name.
    NotFound {
        /// What was asked for (control characters replaced, cut).
        spec: String,
    },
    /// Several instances have this name.
    Ambiguous {
        /// What was asked for.
        spec: String,
        /// `(id, display name)` of each match, sorted by id.
        candidates: Vec<(String, String)>,
    },
    /// The spec names an account or region that is not configured.
    UnknownLocation {
        /// What was asked for.
        spec: String,
        /// `account/region` of every configured member.
        known: Vec<String>,
    },
    /// SSM could not be asked.
    Api(#[from] SsmError),
    /// The target's tags could not be read, so no policy can be decided
    /// on it.
    Tags {
        /// The instance id.
        id: String,
        /// Why.
        source: SsmError,
    },
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::NotFound { spec } => write!(
                f,
                "{spec} is not an SSM managed instance (by id or name); ssmgate only connects to managed instances"
            ),
            ResolveError::Ambiguous { spec, candidates } => {
                write!(f, "{spec} matches {} instances: ", candidates.len())?;
                for (i, (id, name)) in candidates.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{id}({name})")?;
                }
                f.write_str("; use the instance id")
            }
            ResolveError::UnknownLocation { spec, known } => write!(
                f,
                "{spec}: no such account or region (targets are ACCOUNT/TARGET or ACCOUNT/REGION/TARGET with ACCOUNT/REGION one of {})",
                known.join(", ")
            ),
            ResolveError::Api(e) => write!(f, "{e}"),
            ResolveError::Tags { id, source } => write!(
                f,
                "the tags of {id} could not be read, so access to it cannot be decided: {source}"
            ),
        }
    }
}

impl ResolveError {
    fn not_found(spec: &str) -> Self {
        ResolveError::NotFound { spec: quote(spec) }
    }
}

/// A spec made safe to echo to a terminal: control characters become `?`,
/// long ones are cut.
pub(crate) fn quote(spec: &str) -> String {
    let mut out: String = spec
        .chars()
        .take(MAX_QUOTED_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if spec.chars().count() > MAX_QUOTED_CHARS {
        out.push('…');
    }
    out
}

/// Whether `spec` is shaped like an instance id: `^(i|mi)-[0-9a-f]{8,17}$`.
pub fn is_instance_id(spec: &str) -> bool {
    let hex = spec
        .strip_prefix("i-")
        .or_else(|| spec.strip_prefix("mi-"))
        .unwrap_or("");
    (8..=17).contains(&hex.len())
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Case-insensitive equality (Unicode lower case).
fn same_name(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// Spellings of `spec` to send as `tag:Name` filter values: SSM compares
/// tag values exactly, so one call asks for the usual casings at once (as
/// typed, lower, upper, capitalised, title case). Each differs from `spec`
/// only in case.
fn name_variants(spec: &str) -> Vec<String> {
    let lower = spec.to_lowercase();
    let capitalise = |s: &str| {
        let mut chars = s.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
            None => String::new(),
        }
    };
    let title: String = {
        let mut out = String::new();
        let mut word_start = true;
        for c in lower.chars() {
            if word_start {
                out.extend(c.to_uppercase());
            } else {
                out.push(c);
            }
            word_start = !c.is_alphanumeric();
        }
        out
    };
    let mut variants: Vec<String> = Vec::new();
    for v in [
        spec.to_owned(),
        lower.clone(),
        spec.to_uppercase(),
        capitalise(&lower),
        title,
    ] {
        if v.to_lowercase() == lower && !variants.contains(&v) {
            variants.push(v);
        }
    }
    variants
}

/// The account name of targets when no `[[aws.accounts]]` are configured.
pub const DEFAULT_ACCOUNT: &str = "default";

/// Where an inventory's instances are: account name and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The `[[aws.accounts]]` name, or [`DEFAULT_ACCOUNT`].
    pub account: String,
    /// The region.
    pub region: String,
}

impl Default for Location {
    fn default() -> Self {
        Location {
            account: DEFAULT_ACCOUNT.to_owned(),
            region: String::new(),
        }
    }
}

/// Resolves target specs against SSM's inventory; see the module docs.
pub struct Inventory {
    location: Location,
    api: Arc<dyn SsmApi>,
    ttl: Duration,
    listing: ListingCache,
    tags: TagCache,
}

impl Inventory {
    /// An inventory over `api` whose listing and tags are cached for
    /// `cache_ttl`.
    pub fn new(api: Arc<dyn SsmApi>, cache_ttl: Duration) -> Self {
        Inventory {
            location: Location::default(),
            api,
            ttl: cache_ttl,
            listing: ListingCache::new(),
            tags: TagCache::new(cache_ttl),
        }
    }

    /// The same inventory, labelling its targets with `location`.
    pub fn in_location(mut self, location: Location) -> Self {
        self.location = location;
        self
    }

    /// Where its instances are.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The one managed instance `spec` names, with its tags.
    pub async fn resolve(&self, spec: &str) -> Result<Target, ResolveError> {
        if spec.is_empty()
            || spec.chars().count() > MAX_SPEC_CHARS
            || spec.chars().any(char::is_control)
        {
            return Err(ResolveError::not_found(spec));
        }
        if is_instance_id(spec) {
            return self.resolve_id(spec).await;
        }
        let variants = name_variants(spec);
        let (tagged, listing) = tokio::join!(
            self.api.describe_instances_by_tag("Name", &variants),
            self.listing.get(self.api.as_ref(), self.ttl)
        );
        let mut found: BTreeMap<String, InstanceInfo> = BTreeMap::new();
        for info in tagged? {
            found.entry(info.id.clone()).or_insert(info);
        }
        for info in listing?.iter() {
            let named = [&info.computer_name, &info.name]
                .into_iter()
                .flatten()
                .any(|n| same_name(n, spec));
            if named {
                found.entry(info.id.clone()).or_insert_with(|| info.clone());
            }
        }
        let mut targets = self.with_tags(found.into_values().collect()).await?;
        match targets.len() {
            0 => Err(ResolveError::not_found(spec)),
            1 => Ok(targets.remove(0)),
            _ => {
                targets.sort_by(|a, b| a.id.cmp(&b.id));
                Err(ResolveError::Ambiguous {
                    spec: quote(spec),
                    candidates: targets
                        .iter()
                        .map(|t| (t.id.clone(), quote(t.display_name())))
                        .collect(),
                })
            }
        }
    }

    async fn resolve_id(&self, id: &str) -> Result<Target, ResolveError> {
        let find = |listing: &[InstanceInfo]| listing.iter().find(|i| i.id == id).cloned();
        let mut info = find(&self.listing.get(self.api.as_ref(), self.ttl).await?);
        if info.is_none() {
            let max_age = self.ttl.min(MISS_REFRESH_AFTER);
            info = find(&self.listing.get(self.api.as_ref(), max_age).await?);
        }
        let info = info.ok_or_else(|| ResolveError::not_found(id))?;
        let tags = self.tags(&info.id).await?;
        Ok(Target::new(&self.location, &info, &tags))
    }

    /// Every managed instance, with tags, sorted by display name (then
    /// id). Tags are fetched [`TAG_CONCURRENCY`] at a time.
    pub async fn list(&self) -> Result<Vec<Target>, ResolveError> {
        let listing = self.listing.get(self.api.as_ref(), self.ttl).await?;
        let mut targets = self.with_tags(listing.iter().cloned().collect()).await?;
        targets.sort_by(|a, b| {
            a.display_name()
                .to_lowercase()
                .cmp(&b.display_name().to_lowercase())
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(targets)
    }

    /// `id`'s tags, or why they can't be had.
    async fn tags(&self, id: &str) -> Result<cache::Tags, ResolveError> {
        self.tags
            .get(&self.api, id)
            .await
            .map_err(|source| ResolveError::Tags {
                id: id.to_owned(),
                source,
            })
    }

    /// Targets for `infos`, in order. EC2 instances' tags are all asked
    /// for at once (the batcher groups them by 100); hybrid nodes'
    /// [`TAG_CONCURRENCY`] at a time.
    async fn with_tags(&self, infos: Vec<InstanceInfo>) -> Result<Vec<Target>, ResolveError> {
        let hybrid_slots = tokio::sync::Semaphore::new(TAG_CONCURRENCY);
        let hybrid_slots = &hybrid_slots;
        futures_util::future::try_join_all(infos.iter().map(|info| async move {
            // The semaphore is never closed, so acquiring only waits.
            let _slot = match info.id.starts_with("mi-") {
                true => hybrid_slots.acquire().await.ok(),
                false => None,
            };
            let tags = self.tags(&info.id).await?;
            Ok(Target::new(&self.location, info, &tags))
        }))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_id_shape() {
        for ok in ["i-0123abcd", "i-0123456789abcdef0", "mi-0a1b2c3d4e5f60003"] {
            assert!(is_instance_id(ok), "{ok}");
        }
        for bad in [
            "i-0123abc",
            "i-0123456789abcdef01",
            "i-0123ABCD",
            "x-0123abcd",
            "I-0123abcd",
            "i-",
            "mi-",
            "i-0123abcg",
            "127.0.0.1",
            "i-0123abcd.example.com",
        ] {
            assert!(!is_instance_id(bad), "{bad}");
        }
    }

    #[test]
    fn variants_differ_only_in_case() {
        assert_eq!(
            name_variants("web-server-1"),
            vec![
                "web-server-1",
                "WEB-SERVER-1",
                "Web-server-1",
                "Web-Server-1"
            ]
        );
        assert_eq!(name_variants("WEB-1"), vec!["WEB-1", "web-1", "Web-1"]);
        // Upper-casing ß gives "SS", which is not the same name.
        let v = name_variants("straße");
        assert!(v.iter().all(|s| s.to_lowercase() == "straße"), "{v:?}");
        assert!(name_variants("x").len() <= 5);
    }

    #[test]
    fn error_texts() {
        let e = ResolveError::not_found("169.254.169.254");
        assert_eq!(
            e.to_string(),
            "169.254.169.254 is not an SSM managed instance (by id or name); ssmgate only connects to managed instances"
        );
        let e = ResolveError::not_found("evil\u{1b}[2Jname");
        assert!(e.to_string().starts_with("evil?[2Jname is not"));
        let e = ResolveError::Ambiguous {
            spec: "web".into(),
            candidates: vec![
                ("i-00000001".into(), "web".into()),
                ("i-00000002".into(), "web".into()),
            ],
        };
        assert_eq!(
            e.to_string(),
            "web matches 2 instances: i-00000001(web), i-00000002(web); use the instance id"
        );
    }
}
