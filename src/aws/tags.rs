//! Reading managed instances' tags from the APIs that really serve them.
//!
//! - Hybrid nodes (`mi-…`): SSM `ListTagsForResource` with
//!   `ResourceType=ManagedInstance`. SSM refuses EC2 ids there
//!   (`ValidationException: resourceId should be in format
//!   mi-[0-9a-f]{17} for resource type ManagedInstance`), so it cannot be
//!   used for `i-…`.
//! - EC2 instances (`i-…`): the Resource Groups Tagging API's
//!   `GetResources` with `ResourceARNList` (at most 100 ARNs per call,
//!   no pagination parameters allowed with it). A listed ARN that is
//!   missing from the answer has no tags ("resources that have or had
//!   tags" are returned; a missing resource is not an error).
//!
//! Why the Tagging API and not EC2 `DescribeTags`/`DescribeInstances`:
//! - build cost: `aws-sdk-resourcegroupstagging` models ten operations
//!   and shares every smithy crate with `aws-sdk-ssm` (1.119 pinned for
//!   that); `aws-sdk-ec2` models several hundred and is by far the
//!   largest SDK crate, minutes more on every clean build and CI run;
//! - calls at 10,000 instances: 100 ARNs per call, so one call per
//!   batch of cold lookups and 100 calls for the whole fleet (the
//!   picker). `DescribeTags` pages 1,000 tags (≈ 200 instances at five
//!   tags each): about 50 calls for the fleet, one per cold lookup — the
//!   same order;
//! - permission: one read-only action, `tag:GetResources`, which reads
//!   tags only (`ec2:DescribeInstances` would also expose network and
//!   launch details the gateway doesn't need).
//!
//! The ARNs need the account and partition; [`super::identity`] gets them
//! once from STS.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_ssm::types::ResourceTypeForTagging;

use super::errors::{CallContext, Service, SsmError, from_sdk};
use super::identity::Home;

/// Most ARNs one `GetResources` call takes.
pub const MAX_ARNS_PER_CALL: usize = 100;

/// One instance's tags.
pub type TagMap = BTreeMap<String, String>;

/// `ListTagsForResource` of hybrid node `id`.
pub(super) async fn managed_instance(
    ssm: &aws_sdk_ssm::Client,
    id: &str,
) -> Result<TagMap, SsmError> {
    let out = ssm
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::ManagedInstance)
        .resource_id(id)
        .send()
        .await
        .map_err(|e| from_sdk(e, CallContext::default()))?;
    Ok(out
        .tag_list()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect())
}

/// `GetResources` for EC2 instances `ids` (any number; one call per 100).
/// Every id asked for is in the answer, untagged ones with no tags.
pub(super) async fn ec2_instances(
    tagging: &aws_sdk_resourcegroupstagging::Client,
    home: &Home,
    region: &str,
    ids: &[String],
) -> Result<HashMap<String, TagMap>, SsmError> {
    let mut out: HashMap<String, TagMap> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(MAX_ARNS_PER_CALL) {
        let by_arn: HashMap<String, &str> = chunk
            .iter()
            .map(|id| (home.instance_arn(region, id), id.as_str()))
            .collect();
        let page = tagging
            .get_resources()
            .set_resource_arn_list(Some(by_arn.keys().cloned().collect()))
            .send()
            .await
            .map_err(|e| from_sdk(e, CallContext::of(Service::Tagging)))?;
        if page.pagination_token().is_some_and(|t| !t.is_empty()) {
            // Not expected with ResourceARNList (it takes no pagination
            // parameters). Instances left out would read as untagged:
            // refuse instead.
            return Err(SsmError::Other {
                service: Service::Tagging,
                code: "ResponseError".to_owned(),
                message: "GetResources paginated a list of ARNs".to_owned(),
            });
        }
        for id in chunk {
            out.entry(id.clone()).or_default();
        }
        for mapping in page.resource_tag_mapping_list() {
            let Some(id) = mapping.resource_arn().and_then(|arn| by_arn.get(arn)) else {
                continue;
            };
            let tags = out.entry((*id).to_owned()).or_default();
            for tag in mapping.tags() {
                tags.insert(tag.key().to_owned(), tag.value().to_owned());
            }
        }
    }
    Ok(out)
}
