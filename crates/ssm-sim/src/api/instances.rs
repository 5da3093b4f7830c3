//! Instance operations of the sim's SSM API: DescribeInstanceInformation
//! (both filter styles, pagination), GetConnectionStatus and
//! ListTagsForResource, each seeing the instances of the request's account
//! and region only (see [`super`]).

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{self as apierr, ApiError};
use super::{epoch_seconds, paginate};
use crate::documents;
use crate::inventory::{Instance, PingStatus, is_instance_id};
use crate::location::Location;
use crate::registry::Registry;

/// `DescribeInstanceInformation` page size when `MaxResults` is absent
/// (the API documents a default of 10).
const DEFAULT_MAX_RESULTS: i64 = 10;

/// Keys of the legacy `InstanceInformationFilterList`.
const LEGACY_KEYS: &[&str] = &[
    "InstanceIds",
    "AgentVersion",
    "PingStatus",
    "PlatformTypes",
    "ActivationIds",
    "IamRole",
    "ResourceType",
    "AssociationStatus",
];

/// Keys of `Filters` besides `tag:<name>`.
const STRING_KEYS: &[&str] = &[
    "InstanceIds",
    "AgentVersion",
    "PingStatus",
    "PlatformTypes",
    "ActivationIds",
    "IamRole",
    "ResourceType",
    "AssociationStatus",
    "SourceIds",
    "SourceTypes",
    "tag-key",
];

/// Legacy filter: `{"key": …, "valueSet": […]}`.
#[derive(Debug, Deserialize)]
pub struct LegacyFilter {
    key: Option<String>,
    #[serde(rename = "valueSet")]
    value_set: Option<Vec<String>>,
}

/// Filter: `{"Key": …, "Values": […]}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StringFilter {
    key: Option<String>,
    values: Option<Vec<String>>,
}

/// `DescribeInstanceInformation` request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeInstanceInformationRequest {
    instance_information_filter_list: Option<Vec<LegacyFilter>>,
    filters: Option<Vec<StringFilter>>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

/// `GetConnectionStatus` request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetConnectionStatusRequest {
    target: Option<String>,
}

/// `ListTagsForResource` request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceRequest {
    resource_type: Option<String>,
    resource_id: Option<String>,
}

/// One parsed filter: a key and its accepted values.
struct Filter {
    key: String,
    values: Vec<String>,
}

impl Filter {
    fn matches(&self, i: &Instance) -> bool {
        let any = |field: &str| self.values.iter().any(|v| v == field);
        match self.key.as_str() {
            "InstanceIds" | "SourceIds" => any(&i.id),
            "AgentVersion" => any(&i.agent_version),
            "PingStatus" => any(i.ping_status.as_str()),
            "PlatformTypes" => any(&i.platform_type),
            "ResourceType" => any(&i.resource_type),
            "SourceTypes" => any(i.source_type()),
            "tag-key" => self.values.iter().any(|k| i.tags.contains_key(k)),
            key => match key.strip_prefix("tag:") {
                Some(tag) => i.tags.get(tag).is_some_and(|value| any(value)),
                // ActivationIds, IamRole, AssociationStatus: the sim's
                // instances have none, so nothing matches.
                None => false,
            },
        }
    }

    /// Rejects values that cannot match a well-formed instance.
    fn check_values(&self) -> Result<(), ApiError> {
        let allowed: &[&str] = match self.key.as_str() {
            "InstanceIds" => {
                if let Some(bad) = self.values.iter().find(|v| !is_instance_id(v)) {
                    return Err(ApiError::new(
                        "InvalidInstanceId",
                        format!("Instance Id {bad} is not valid."),
                    ));
                }
                return Ok(());
            }
            "PingStatus" => &["Online", "ConnectionLost", "Inactive"],
            "PlatformTypes" => &["Windows", "Linux", "MacOS"],
            "ResourceType" => &["EC2Instance", "ManagedInstance"],
            _ => return Ok(()),
        };
        match self.values.iter().find(|v| !allowed.contains(&v.as_str())) {
            Some(bad) => Err(ApiError::new(
                "InvalidInstanceInformationFilterValue",
                format!("{bad} is not a valid value for filter key {}.", self.key),
            )),
            None => Ok(()),
        }
    }
}

fn parse_filters(req: &DescribeInstanceInformationRequest) -> Result<Vec<Filter>, ApiError> {
    let mut v = Vec::new();
    let mut filters = Vec::new();
    if req.filters.is_some() && req.instance_information_filter_list.is_some() {
        return Err(ApiError::new(
            "InvalidInstanceInformationFilterValue",
            "InstanceInformationFilterList and Filters cannot be used together.",
        ));
    }
    for (i, f) in req.filters.iter().flatten().enumerate() {
        let at = format!("filters.{}.member", i + 1);
        let (Some(key), Some(values)) = (&f.key, &f.values) else {
            v.push(apierr::not_null(&format!("{at}.key/values")));
            continue;
        };
        // The model sets no maximum for this key.
        apierr::check_length(&format!("{at}.key"), key, 1, usize::MAX, &mut v);
        if !(1..=100).contains(&values.len()) {
            v.push(format!(
                "Value at '{at}.values' failed to satisfy constraint: Member must have length less than or equal to 100, Member must have length greater than or equal to 1"
            ));
        }
        let tag_ok = key.strip_prefix("tag:").is_some_and(|t| !t.is_empty());
        if !tag_ok && !STRING_KEYS.contains(&key.as_str()) {
            return Err(ApiError::new(
                "InvalidFilterKey",
                format!("The filter key {key} is not valid."),
            ));
        }
        filters.push(Filter {
            key: key.clone(),
            values: values.clone(),
        });
    }
    for (i, f) in req
        .instance_information_filter_list
        .iter()
        .flatten()
        .enumerate()
    {
        let at = format!("instanceInformationFilterList.{}.member", i + 1);
        let (Some(key), Some(values)) = (&f.key, &f.value_set) else {
            v.push(apierr::not_null(&format!("{at}.key/valueSet")));
            continue;
        };
        apierr::check_enum(&format!("{at}.key"), key, LEGACY_KEYS, &mut v);
        if !(1..=100).contains(&values.len()) {
            v.push(format!(
                "Value at '{at}.valueSet' failed to satisfy constraint: Member must have length less than or equal to 100, Member must have length greater than or equal to 1"
            ));
        }
        filters.push(Filter {
            key: key.clone(),
            values: values.clone(),
        });
    }
    apierr::finish(v)?;
    for f in &filters {
        f.check_values()?;
    }
    Ok(filters)
}

fn instance_json(i: &Instance, now: SystemTime) -> Value {
    let last_ping = match i.ping_status {
        PingStatus::Online => now,
        PingStatus::ConnectionLost => now - Duration::from_secs(3600),
        PingStatus::Inactive => now - Duration::from_secs(7 * 86_400),
    };
    let computer_name = i
        .computer_name
        .clone()
        .unwrap_or_else(|| format!("ip-{}.sim.internal", i.ip_address.replace(['.', ':'], "-")));
    let mut out = json!({
        "InstanceId": i.id,
        "PingStatus": i.ping_status.as_str(),
        "LastPingDateTime": epoch_seconds(last_ping),
        "AgentVersion": i.agent_version,
        "IsLatestVersion": false,
        "PlatformType": i.platform_type,
        "PlatformName": i.platform_name,
        "PlatformVersion": i.platform_version,
        "ResourceType": i.resource_type,
        "IPAddress": i.ip_address,
        "ComputerName": computer_name,
        "SourceId": i.id,
        "SourceType": i.source_type(),
    });
    // Like SSM: `Name` is the activation's instance name, reported for
    // hybrid (mi-) instances only; EC2 names are tags.
    if i.resource_type == "ManagedInstance" {
        if let Some(name) = &i.name {
            out["Name"] = json!(name);
        }
        out["RegistrationDate"] = json!(epoch_seconds(now - Duration::from_secs(30 * 86_400)));
    }
    out
}

pub(super) fn describe_instance_information(
    registry: &Registry,
    here: &Location,
    req: DescribeInstanceInformationRequest,
) -> Result<Value, ApiError> {
    let mut v = Vec::new();
    let max = req.max_results.unwrap_or(DEFAULT_MAX_RESULTS);
    apierr::check_range("maxResults", max, 5, 50, &mut v);
    apierr::finish(v)?;
    let filters = parse_filters(&req)?;
    let matching: Vec<&Instance> = registry
        .instances_at(here)
        .filter(|i| filters.iter().all(|f| f.matches(i)))
        .collect();
    let max = usize::try_from(max).unwrap_or(DEFAULT_MAX_RESULTS as usize);
    let (page, next) = paginate(
        matching,
        "DescribeInstanceInformation",
        max,
        req.next_token.as_deref(),
    )?;
    let now = SystemTime::now();
    let mut out = json!({
        "InstanceInformationList": page.iter().map(|i| instance_json(i, now)).collect::<Vec<_>>()
    });
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    Ok(out)
}

pub(super) fn get_connection_status(
    registry: &Registry,
    here: &Location,
    req: GetConnectionStatusRequest,
) -> Result<Value, ApiError> {
    let target = req
        .target
        .ok_or_else(|| ApiError::validation(vec![apierr::not_null("target")]))?;
    let mut v = Vec::new();
    apierr::check_length("target", &target, 1, 400, &mut v);
    apierr::finish(v)?;
    let connected = registry
        .instance_at(here, &target)
        .is_some_and(Instance::is_connected);
    Ok(json!({
        "Target": target,
        "Status": if connected { "connected" } else { "notconnected" },
    }))
}

/// `ListTagsForResource`'s refusal of a `ManagedInstance` id that is not a
/// hybrid id, as reported against boto3 in 2024 (boto/boto3#4265, #4609).
/// An older report (aws-tools-for-powershell#204, 2021) shows the id
/// quoted after `resourceId`; the sim follows the newer wording.
pub const MANAGED_INSTANCE_ID_FORMAT: &str =
    "resourceId should be in format mi-[0-9a-f]{17} for resource type ManagedInstance";

/// `mi-` and exactly 17 lowercase hex digits: the only `ManagedInstance`
/// ids `ListTagsForResource` accepts.
fn is_hybrid_id(id: &str) -> bool {
    id.strip_prefix("mi-").is_some_and(|hex| {
        hex.len() == 17
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

const RESOURCE_TYPES: &[&str] = &[
    "Document",
    "ManagedInstance",
    "MaintenanceWindow",
    "Parameter",
    "PatchBaseline",
    "OpsItem",
    "OpsMetadata",
    "Automation",
    "Association",
];

pub(super) fn list_tags_for_resource(
    registry: &Registry,
    here: &Location,
    req: ListTagsForResourceRequest,
) -> Result<Value, ApiError> {
    let (Some(kind), Some(id)) = (req.resource_type, req.resource_id) else {
        return Err(ApiError::validation(vec![apierr::not_null(
            "resourceType/resourceId",
        )]));
    };
    let mut v = Vec::new();
    apierr::check_enum("resourceType", &kind, RESOURCE_TYPES, &mut v);
    apierr::finish(v)?;
    let invalid_id = || {
        ApiError::new(
            "InvalidResourceId",
            "The resource ID is not valid. Verify that you entered the correct ID and try again.",
        )
    };
    let tags: Vec<Value> = match kind.as_str() {
        // Only hybrid ids: SSM keeps no tags of EC2 instances (they are
        // EC2's, read through EC2 or the tagging API) and refuses `i-…`.
        "ManagedInstance" if !is_hybrid_id(&id) => {
            return Err(ApiError::new(
                "ValidationException",
                MANAGED_INSTANCE_ID_FORMAT,
            ));
        }
        "ManagedInstance" => registry
            .instance_at(here, &id)
            .ok_or_else(invalid_id)?
            .tags
            .iter()
            .map(|(k, v)| json!({ "Key": k, "Value": v }))
            .collect(),
        "Document" if documents::exists(&id) => Vec::new(),
        "Document" => return Err(invalid_id()),
        _ => {
            return Err(ApiError::new(
                "InvalidResourceType",
                "The resource type is not valid. For example, if you are attempting to tag an EC2 instance, the instance must be a registered managed node.",
            ));
        }
    };
    Ok(json!({ "TagList": tags }))
}
