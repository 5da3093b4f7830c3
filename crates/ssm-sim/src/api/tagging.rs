//! The Resource Groups Tagging API's `GetResources`, as far as EC2
//! instances go: AWS JSON 1.1, `X-Amz-Target:
//! ResourceGroupsTaggingAPI_20170126.GetResources`, on the simulator's one
//! endpoint. It answers with the EC2 instances (`i-…`) of the request's
//! account and region (see [`super`]) and their tags, as ARNs of that
//! account and region; hybrid nodes (`mi-…`) are not EC2 resources and
//! never appear (their tags come from SSM's `ListTagsForResource`).
//!
//! What is modelled, from the API reference, the SDK model (constraint
//! traits as botocore's `service-2.json` carries them) and public reports
//! of real answers:
//! - only resources that have tags are returned (AWS returns "tagged or
//!   previously tagged" resources; the sim has no history, so an instance
//!   whose tags were all removed is not returned);
//! - `ResourceTypeFilters`: `ec2` and `ec2:instance` select instances; any
//!   other type selects nothing here (the sim has no other resources);
//! - `ResourceARNList`: instance ARNs of the request's region and account
//!   select those instances; unknown ARNs, those of other accounts and
//!   regions included, are simply left out (documented); an ARN
//!   that is not an ARN, or an EC2 ARN without `instance/`-style resource
//!   type, is `InvalidParameterException` "`<arn>` is not a valid
//!   AmazonResourceName (ARN)" (the message AWS sent for
//!   `arn:aws:ec2:…:i-…`, aws/aws-cli#8109);
//! - `TagFilters`: each filter's key must be present, and when it lists
//!   values, with one of them (filters are ANDed, values ORed);
//! - `ResourcesPerPage`: 1–100 (default 100) and `TagsPerPage`: 100–500,
//!   both documented ranges, else `InvalidParameterException`. With
//!   `TagsPerPage` a page ends before the resource whose tags would pass
//!   the limit (a resource is never split); with both, both limits apply;
//! - `PaginationToken` is opaque and an unreadable one is
//!   `InvalidParameterException`; the last page's token is `""`, as AWS
//!   sends it;
//! - refused combinations, documented as `InvalidParameterException`:
//!   `ResourceARNList` with `ResourceTypeFilters`, with `TagFilters`, or
//!   with any pagination parameter (`ResourcesPerPage`, `TagsPerPage`,
//!   `PaginationToken`); `ExcludeCompliantResources` without
//!   `IncludeComplianceDetails`;
//! - the model's constraints, checked first and answered as
//!   `ValidationException` (`1 validation error detected: …`), which is how
//!   AWS's JSON services report constraint violations (a real answer:
//!   `… value [...] at 'tagFilters.1.member.values' failed to satisfy
//!   constraint: Member must have length less than or equal to 20`):
//!   `TagFilters` at most 50, each key 1–128 characters and at most 20
//!   values of at most 256; each `ResourceTypeFilters` entry at most 256;
//!   `ResourceARNList` 1–100 ARNs of 1–1011; `PaginationToken` at most
//!   2048. `ValidationException` is not among the operation's modelled
//!   errors, so the SDKs surface it as an unhandled error with that code.
//!
//! Unknown, and the sim's choice: the exact messages of the documented
//! `InvalidParameterException`s (the sim's own wording), the rendering of
//! a list of structures in a validation message (left out), whether an
//! empty `TagFilters`/`ResourceTypeFilters` list counts as "specified"
//! (the sim: no), what a filter without `Key` matches (the sim: anything),
//! and more than the documented 100 `ResourceTypeFilters` (the model has
//! no limit; the sim answers `InvalidParameterException`).
//!
//! Not modelled: compliance details (`IncludeComplianceDetails` is
//! accepted and adds nothing: the sim has no tag policies),
//! `PaginationTokenExpiredException` (tokens never expire here), and every
//! resource type but EC2 instances.

use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{self as apierr, ApiError};
use crate::location::Location;
use crate::registry::Registry;

/// Largest `ResourcesPerPage` (and the default).
const MAX_PER_PAGE: i64 = 100;
/// `TagsPerPage`'s documented range.
const TAGS_PER_PAGE: (i64, i64) = (100, 500);
/// Largest `ResourceARNList` (model: 1–100).
const MAX_ARNS: usize = 100;
/// Longest ARN in `ResourceARNList` (model).
const MAX_ARN_LEN: usize = 1011;
/// Most `TagFilters` (model).
const MAX_TAG_FILTERS: usize = 50;
/// Most values in one tag filter (model).
const MAX_TAG_VALUES: usize = 20;
/// Most `ResourceTypeFilters` (documented, not in the model).
const MAX_TYPE_FILTERS: usize = 100;
/// Longest `PaginationToken` (model).
const MAX_TOKEN_LEN: usize = 2048;
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
    /// Page size in tags.
    #[serde(default)]
    pub tags_per_page: Option<i64>,
    /// Compliance details wanted (accepted; nothing to add).
    #[serde(default)]
    pub include_compliance_details: Option<bool>,
    /// Only non-compliant resources (needs `IncludeComplianceDetails`).
    #[serde(default)]
    pub exclude_compliant_resources: Option<bool>,
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

/// `value [a, b] at '<field>' failed to satisfy constraint: Member must
/// have length …`: the shape of AWS's answer for a list of strings.
fn list_length(field: &str, values: &[String], min: usize, max: usize, out: &mut Vec<String>) {
    let bound = if values.len() > max {
        format!("less than or equal to {max}")
    } else if values.len() < min {
        format!("greater than or equal to {min}")
    } else {
        return;
    };
    out.push(format!(
        "value [{}] at '{field}' failed to satisfy constraint: Member must have length {bound}",
        values.join(", ")
    ));
}

/// A list whose members have a length limit: one violation for the list
/// naming the members' constraint (AWS's wording for members of a list is
/// not known; this follows its wording for map values).
fn members_length(field: &str, values: &[String], min: usize, max: usize, out: &mut Vec<String>) {
    if values
        .iter()
        .any(|v| !(min..=max).contains(&v.chars().count()))
    {
        out.push(format!(
            "value [{}] at '{field}' failed to satisfy constraint: Member must satisfy constraint: [Member must have length less than or equal to {max}, Member must have length greater than or equal to {min}]",
            values.join(", ")
        ));
    }
}

/// The model's constraint traits (`ValidationException`, every violation).
fn validate_model(req: &GetResourcesRequest) -> Result<(), ApiError> {
    let mut v = Vec::new();
    if let Some(token) = &req.pagination_token {
        apierr::check_length("paginationToken", token, 0, MAX_TOKEN_LEN, &mut v);
    }
    if let Some(filters) = &req.tag_filters {
        if filters.len() > MAX_TAG_FILTERS {
            v.push(format!(
                "Value at 'tagFilters' failed to satisfy constraint: Member must have length less than or equal to {MAX_TAG_FILTERS}"
            ));
        }
        for (i, f) in filters.iter().enumerate() {
            let at = format!("tagFilters.{}.member", i + 1);
            if let Some(key) = &f.key {
                apierr::check_length(&format!("{at}.key"), key, 1, 128, &mut v);
            }
            if let Some(values) = &f.values {
                list_length(&format!("{at}.values"), values, 0, MAX_TAG_VALUES, &mut v);
                members_length(&format!("{at}.values"), values, 0, 256, &mut v);
            }
        }
    }
    if let Some(types) = &req.resource_type_filters {
        members_length("resourceTypeFilters", types, 0, 256, &mut v);
    }
    if let Some(arns) = &req.resource_arn_list {
        list_length("resourceARNList", arns, 1, MAX_ARNS, &mut v);
        members_length("resourceARNList", arns, 1, MAX_ARN_LEN, &mut v);
    }
    apierr::finish(v)
}

/// `arn:partition:service:region:account:resource` with the parts AWS
/// needs; an EC2 resource must name its type (`instance/i-…`).
fn is_valid_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, _region, _account, resource] = parts.as_slice() else {
        return false;
    };
    *prefix == "arn"
        && !partition.is_empty()
        && !service.is_empty()
        && !resource.is_empty()
        && (*service != "ec2" || resource.contains('/'))
}

/// A list member present with at least one entry (an empty list counts as
/// absent: whether AWS agrees is unknown).
fn given<T>(list: Option<&[T]>) -> bool {
    list.is_some_and(|l| !l.is_empty())
}

/// The service's own checks (`InvalidParameterException`).
fn check_parameters(req: &GetResourcesRequest) -> Result<(), ApiError> {
    if let Some(arns) = &req.resource_arn_list {
        let conflicts = [
            (
                "ResourceTypeFilters",
                given(req.resource_type_filters.as_deref()),
            ),
            ("TagFilters", given(req.tag_filters.as_deref())),
            ("ResourcesPerPage", req.resources_per_page.is_some()),
            ("TagsPerPage", req.tags_per_page.is_some()),
            (
                "PaginationToken",
                req.pagination_token
                    .as_deref()
                    .is_some_and(|t| !t.is_empty()),
            ),
        ];
        if let Some((name, _)) = conflicts.iter().find(|(_, given)| *given) {
            return Err(invalid(format!(
                "ResourceARNList cannot be specified together with {name}."
            )));
        }
        if let Some(bad) = arns.iter().find(|a| !is_valid_arn(a)) {
            return Err(invalid(format!(
                "{bad} is not a valid AmazonResourceName (ARN)"
            )));
        }
    }
    if let Some(n) = req.resources_per_page
        && !(1..=MAX_PER_PAGE).contains(&n)
    {
        return Err(invalid(format!(
            "ResourcesPerPage must be between 1 and {MAX_PER_PAGE} (got {n})"
        )));
    }
    if let Some(n) = req.tags_per_page
        && !(TAGS_PER_PAGE.0..=TAGS_PER_PAGE.1).contains(&n)
    {
        return Err(invalid(format!(
            "TagsPerPage must be between {} and {} (got {n})",
            TAGS_PER_PAGE.0, TAGS_PER_PAGE.1
        )));
    }
    if let Some(types) = &req.resource_type_filters
        && types.len() > MAX_TYPE_FILTERS
    {
        return Err(invalid(format!(
            "ResourceTypeFilters can hold at most {MAX_TYPE_FILTERS} resource types (got {})",
            types.len()
        )));
    }
    if req.exclude_compliant_resources == Some(true) && req.include_compliance_details != Some(true)
    {
        return Err(invalid(
            "ExcludeCompliantResources can be used only if IncludeComplianceDetails is true.",
        ));
    }
    Ok(())
}

/// `GetResources` served at `here`.
pub(super) fn get_resources(
    registry: &Registry,
    here: &Location,
    req: GetResourcesRequest,
) -> Result<Value, ApiError> {
    validate_model(&req)?;
    check_parameters(&req)?;
    let per_page = req
        .resources_per_page
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(MAX_PER_PAGE as usize);
    let tags_per_page = req.tags_per_page.and_then(|n| usize::try_from(n).ok());
    let start = match req.pagination_token.as_deref() {
        None | Some("") => 0,
        Some(token) => token
            .strip_prefix("simpage-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| invalid("The PaginationToken is not valid."))?,
    };
    let wants_instances = req
        .resource_type_filters
        .as_ref()
        .filter(|types| !types.is_empty())
        .is_none_or(|types| types.iter().any(|t| t == "ec2" || t == "ec2:instance"));
    let mut matching = Vec::new();
    if wants_instances {
        for instance in registry.instances_at(here) {
            if !instance.id.starts_with("i-") || instance.tags.is_empty() {
                continue;
            }
            let arn = here.instance_arn(&instance.id);
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
                matching.push((arn, &instance.tags));
            }
        }
    }
    let mut page = Vec::new();
    let mut tags_on_page = 0usize;
    for (arn, tags) in matching.iter().skip(start).take(per_page) {
        // A resource with no tags counts as one (documented).
        let weight = tags.len().max(1);
        if let Some(limit) = tags_per_page
            && !page.is_empty()
            && tags_on_page + weight > limit
        {
            break;
        }
        tags_on_page += weight;
        let tags: Vec<Value> = tags
            .iter()
            .map(|(k, v)| json!({ "Key": k, "Value": v }))
            .collect();
        page.push(json!({ "ResourceARN": arn, "Tags": tags }));
    }
    let next = start + page.len();
    let token = if next < matching.len() {
        format!("simpage-{next}")
    } else {
        String::new()
    };
    Ok(json!({ "PaginationToken": token, "ResourceTagMappingList": page }))
}
