//! `AssumeRole`: which roles the caller may assume, session duration,
//! source identity and session tags (with role chaining), the session
//! token's size, and the credentials and XML answer.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::request::{AssumeRoleRequest, validation_error};
use super::{element, envelope};
use crate::api::error::ApiError;
use crate::identity::{AssumedRole, Caller, SessionTag, unique_id};
use crate::location::Location;
use crate::registry::Registry;

/// Role sessions chained from another role session last at most 1 h.
const CHAINED_MAX: i64 = 3600;
/// Default `DurationSeconds`.
const DEFAULT_DURATION: i64 = 3600;
/// The model's `DurationSeconds` range.
pub(super) const DURATION_RANGE: (i64, i64) = (900, 43_200);
/// Most session tags and transitive keys.
pub(super) const MAX_TAGS: usize = 50;
/// The largest session token STS issues, in bytes (AWS's announcement of
/// SessionTokenSize: one 4,096-byte limit on the assembled token, which
/// packed policies and tags count against).
pub(super) const MAX_TOKEN: usize = 4096;
/// The size of a session token with no tags, policies or source identity
/// (the sim's choice; real tokens vary).
const BASE_TOKEN: usize = 700;

/// `arn:partition:service:region:account:resource`, each part split out;
/// `None` unless shaped `arn:[^:]+:[^:]+:[^:]*:[^:]*:[^:]+`.
fn split_arn(arn: &str) -> Option<[&str; 5]> {
    let mut parts = arn.split(':');
    if parts.next()? != "arn" {
        return None;
    }
    let partition = parts.next().filter(|p| !p.is_empty())?;
    let service = parts.next().filter(|p| !p.is_empty())?;
    let region = parts.next()?;
    let account = parts.next()?;
    let resource = parts.next().filter(|p| !p.is_empty())?;
    if parts.next().is_some() {
        return None;
    }
    Some([partition, service, region, account, resource])
}

fn access_denied(caller: &Caller, action: &str, resource: &str) -> ApiError {
    ApiError {
        code: "AccessDenied",
        message: format!(
            "User: {} is not authorized to perform: {action} on resource: {resource}",
            caller.arn
        ),
        status: 403,
    }
}

fn invalid_parameter(message: &str) -> ApiError {
    ApiError::new("InvalidParameterValue", message)
}

/// ISO-8601 UTC to the second, as STS writes `Expiration`.
fn iso8601(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `AssumeRole` for `caller`, served at `here` (whose region's partition
/// the role must be in).
pub(super) fn assume_role(
    registry: &Registry,
    caller: &Caller,
    here: &Location,
    form: &BTreeMap<String, String>,
) -> Result<String, ApiError> {
    let req = AssumeRoleRequest::parse(form);
    let (duration, minimum_token) = req.validate()?;
    let (Some(role_arn), Some(session_name)) = (&req.role_arn, &req.session_name) else {
        return Err(validation_error("RoleArn and RoleSessionName are required"));
    };
    let Some([partition, service, region, account, resource]) = split_arn(role_arn) else {
        return Err(validation_error(format!("{role_arn} is invalid")));
    };
    let role_name = resource
        .strip_prefix("role/")
        .and_then(|path| path.rsplit('/').next())
        .filter(|name| !name.is_empty());
    let Some(role_name) = role_name.filter(|_| {
        partition == here.partition()
            && service == "iam"
            && region.is_empty()
            && registry.hosts_account(account)
    }) else {
        return Err(access_denied(caller, "sts:AssumeRole", role_arn));
    };

    let chained = caller.assumed.as_ref();
    let duration = duration.unwrap_or(DEFAULT_DURATION);
    if chained.is_some() && duration > CHAINED_MAX {
        return Err(validation_error(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
        ));
    }
    if duration > i64::from(registry.identities().role_max_session_duration()) {
        return Err(validation_error(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        ));
    }

    // Source identity: reserved prefix; set once, kept when chaining.
    if let Some(id) = &req.source_identity
        && id.to_ascii_lowercase().starts_with("aws:")
    {
        return Err(validation_error(
            "SourceIdentity cannot start with the reserved prefix 'aws:'.",
        ));
    }
    let inherited = chained.and_then(|r| r.source_identity.clone());
    let source_identity = match (inherited, req.source_identity.clone()) {
        (Some(old), Some(new)) if old != new => {
            return Err(access_denied(caller, "sts:SetSourceIdentity", role_arn));
        }
        (old, new) => new.or(old),
    };

    // Session tags (keys are case-insensitive).
    let tags: Vec<SessionTag> = req
        .tags
        .iter()
        .map(|(k, v)| SessionTag {
            key: k.clone().unwrap_or_default(),
            value: v.clone().unwrap_or_default(),
        })
        .collect();
    let lower: Vec<String> = tags.iter().map(|t| t.key.to_lowercase()).collect();
    let mut unique = lower.clone();
    unique.sort();
    unique.dedup();
    if unique.len() < lower.len() {
        return Err(invalid_parameter(
            "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
        ));
    }
    let mut transitive: Vec<String> = req
        .transitive_keys
        .iter()
        .map(|k| k.to_lowercase())
        .collect();
    if transitive.iter().any(|k| !lower.contains(k)) {
        return Err(invalid_parameter(
            "The specified transitive tag key must be included in the requested tags.",
        ));
    }
    let mut session_tags = tags;
    if let Some(parent) = chained {
        if parent.transitive_tag_keys.iter().any(|k| lower.contains(k)) {
            return Err(invalid_parameter(
                "One of the specified transitive tag keys can't be set because it conflicts with a transitive tag key from the calling session.",
            ));
        }
        for key in &parent.transitive_tag_keys {
            if let Some(tag) = parent
                .session_tags
                .iter()
                .find(|t| t.key.to_lowercase() == *key)
            {
                session_tags.push(tag.clone());
                transitive.push(key.clone());
            }
        }
    }

    if let Some(policy) = &req.policy
        && !serde_json::from_str::<serde_json::Value>(policy).is_ok_and(|p| p.is_object())
    {
        return Err(ApiError::new(
            "MalformedPolicyDocument",
            "The policy is not in the valid JSON format.",
        ));
    }

    // The token carries the session's claims: tags, policies and source
    // identity make it longer, and past 4,096 bytes STS refuses.
    let claims: usize = session_tags
        .iter()
        .map(|t| t.key.len() + t.value.len())
        .sum::<usize>()
        + req.policy.as_ref().map_or(0, String::len)
        + req
            .policy_arns
            .iter()
            .flatten()
            .map(String::len)
            .sum::<usize>()
        + source_identity.as_ref().map_or(0, String::len);
    let minimum = minimum_token
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    let token_len = (BASE_TOKEN + claims).max(minimum);
    let utilization = token_len.saturating_mul(100).div_ceil(MAX_TOKEN);
    if token_len > MAX_TOKEN {
        // The wording of the packed-policy limit's refusal, which AWS kept
        // when it folded that limit into the token's.
        return Err(ApiError::new(
            "PackedPolicyTooLarge",
            format!(
                "Packed policy consumes {utilization}% of allotted space, please use smaller policy."
            ),
        ));
    }

    let seconds = u64::try_from(duration).unwrap_or(3600);
    let expiration = SystemTime::now() + Duration::from_secs(seconds);
    let assumed_arn =
        format!("arn:{partition}:sts::{account}:assumed-role/{role_name}/{session_name}");
    let assumed_id = format!(
        "{}:{session_name}",
        unique_id("AROA", &format!("{partition}:{account}:{role_name}"))
    );
    let role = AssumedRole {
        role_arn: role_arn.clone(),
        role_name: role_name.to_owned(),
        session_name: session_name.clone(),
        source_identity: source_identity.clone(),
        session_tags,
        transitive_tag_keys: transitive,
        expiration,
    };
    let creds = registry.identities().issue(
        role,
        assumed_arn.clone(),
        assumed_id.clone(),
        account.to_owned(),
        token_len,
    );
    let mut result = format!(
        "\n    <Credentials>\n      {}\n      {}\n      {}\n      {}\n    </Credentials>\n    <AssumedRoleUser>\n      {}\n      {}\n    </AssumedRoleUser>",
        element("AccessKeyId", &creds.access_key_id),
        element("SecretAccessKey", &creds.secret_access_key),
        element("SessionToken", &creds.session_token),
        element("Expiration", &iso8601(creds.expiration)),
        element("Arn", &assumed_arn),
        element("AssumedRoleId", &assumed_id),
    );
    // PackedPolicySize now repeats SessionTokenUtilization (AWS, for
    // compatibility).
    for (name, value) in [
        ("PackedPolicySize", utilization),
        ("SessionTokenUtilization", utilization),
        ("SessionTokenSize", token_len),
    ] {
        result.push_str(&format!("\n    {}", element(name, &value.to_string())));
    }
    if let Some(id) = &source_identity {
        result.push_str(&format!("\n    {}", element("SourceIdentity", id)));
    }
    result.push_str("\n  ");
    Ok(envelope("AssumeRole", &result))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns() {
        assert_eq!(
            split_arn("arn:aws:iam::123456789012:role/a/b"),
            Some(["aws", "iam", "", "123456789012", "role/a/b"])
        );
        assert!(split_arn("arn:aws:iam::123456789012").is_none());
        assert!(split_arn("nope:aws:iam::1:role/x").is_none());
        assert!(split_arn("arn::iam::1:role/x").is_none());
        assert!(split_arn("arn:aws:iam::1:role/x:y").is_none());
    }
}
