//! The Resource Groups Tagging API's `GetResources`, as far as EC2
//! instances go: AWS JSON 1.1, `X-Amz-Target:
//! ResourceGroupsTaggingAPI_20170126.GetResources`, on the simulator's one
//! endpoint. It answers with the inventory's EC2 instances (`i-…`) and
//! their tags; hybrid nodes (`mi-…`) are not EC2 resources and never
//! appear (their tags come from SSM's `ListTagsForResource`).
//!
//! What is modelled, from the API reference and the SDK model:
//! - only resources that have tags are returned (AWS returns "tagged or
//!   previously tagged" resources; the sim has no history, so an instance
//!   whose tags were all removed is not returned);
//! - `ResourceTypeFilters`: `ec2` and `ec2:instance` select instances; any
//!   other type selects nothing here (the sim has no other resources);
//! - `ResourceARNList`: instance ARNs of this region and account select
//!   those instances; at most 100 ARNs, else `InvalidParameterException`;
//! - `TagFilters`: each filter's key must be present, and when it lists
//!   values, with one of them (filters are ANDed, values ORed);
//! - `ResourcesPerPage`: 1–100 (default 100), else
//!   `InvalidParameterException`; `PaginationToken` is opaque and an
//!   unreadable one is `InvalidParameterException` (AWS's exact wording
//!   for bad tokens is not documented; this message is the sim's own);
//! - the last page's `PaginationToken` is `""`, as AWS sends it.
//!
//! Not modelled: compliance details, `TagsPerPage`, and whether AWS
//! accepts `ResourceARNList` together with the filters (the sim applies
//! all of them).

use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiError;
use crate::registry::Registry;

/// Largest `ResourcesPerPage` (and the default).
const MAX_PER_PAGE: usize = 100;
/// Largest `ResourceARNList`.
const MAX_ARNS: usize = 100;

/// `GetResources` request members the sim reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetResourcesRequest {
    /// Where the previous page ended.
    #[serde(default)]
    pub pagination_token: Option<String>,
    /// Tag filters.
    #[serde(default)]
    pub tag_filters: Option<Vec<TagFilter>>,
    /// Page size.
    #[serde(default)]
    pub resources_per_page: Option<i64>,
    /// `service[:resourceType]` filters.
    #[serde(default)]
    pub resource_type_filters: Option<Vec<String>>,
    /// Exact ARNs.
    #[serde(rename = "ResourceARNList", default)]
    pub resource_arn_list: Option<Vec<String>>,
}

/// One tag filter.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagFilter {
    /// The key.
    #[serde(default)]
    pub key: Option<String>,
    /// Accepted values; none means any.
    #[serde(default)]
    pub values: Option<Vec<String>>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new("InvalidParameterException", message)
}

pub(super) fn get_resources(
    registry: &Registry,
    req: GetResourcesRequest,
) -> Result<Value, ApiError> {
    let per_page = match req.resources_per_page {
        None => MAX_PER_PAGE,
        Some(n) if (1..=MAX_PER_PAGE as i64).contains(&n) => n as usize,
        Some(n) => {
            return Err(invalid(format!(
                "ResourcesPerPage must be between 1 and {MAX_PER_PAGE} (got {n})"
            )));
        }
    };
    let start = match req.pagination_token.as_deref() {
        None | Some("") => 0,
        Some(token) => token
            .strip_prefix("simpage-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| invalid("The PaginationToken is not valid."))?,
    };
    if let Some(arns) = &req.resource_arn_list
        && arns.len() > MAX_ARNS
    {
        return Err(invalid(format!(
            "ResourceARNList can hold at most {MAX_ARNS} ARNs (got {})",
            arns.len()
        )));
    }
    let wants_instances = req
        .resource_type_filters
        .as_ref()
        .is_none_or(|types| types.iter().any(|t| t == "ec2" || t == "ec2:instance"));
    let location = registry.location();
    let mut matching = Vec::new();
    if wants_instances {
        for instance in registry.inventory().iter() {
            if !instance.id.starts_with("i-") || instance.tags.is_empty() {
                continue;
            }
            let arn = location.instance_arn(&instance.id);
            if let Some(arns) = &req.resource_arn_list
                && !arns.contains(&arn)
            {
                continue;
            }
            let passes = req.tag_filters.iter().flatten().all(|f| {
                let Some(key) = f.key.as_deref() else {
                    return true;
                };
                match (instance.tags.get(key), f.values.as_deref()) {
                    (None, _) => false,
                    (Some(_), None | Some([])) => true,
                    (Some(v), Some(values)) => values.iter().any(|w| w == v),
                }
            });
            if passes {
                let tags: Vec<Value> = instance
                    .tags
                    .iter()
                    .map(|(k, v)| json!({ "Key": k, "Value": v }))
                    .collect();
                matching.push(json!({ "ResourceARN": arn, "Tags": tags }));
            }
        }
    }
    let page: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(per_page)
        .cloned()
        .collect();
    let next = start + page.len();
    let token = if next < matching.len() {
        format!("simpage-{next}")
    } else {
        String::new()
    };
    Ok(json!({ "PaginationToken": token, "ResourceTagMappingList": page }))
}
