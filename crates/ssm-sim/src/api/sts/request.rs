//! `AssumeRole`'s request: its members as the query form carries them
//! (`Tags.member.N.Key`, …) and the model's constraint traits, reported
//! as STS's `ValidationError`.

use std::collections::BTreeMap;

use super::assume_role::{DURATION_RANGE, MAX_TAGS, MAX_TOKEN};
use crate::api::error::{self as apierr, ApiError};

/// `ValidationError` with AWS's `N validation error(s) detected: …`.
pub(super) fn validation(violations: Vec<String>) -> Result<(), ApiError> {
    if violations.is_empty() {
        return Ok(());
    }
    let mut e = ApiError::validation(violations);
    e.code = "ValidationError";
    Err(e)
}

pub(super) fn validation_error(message: impl Into<String>) -> ApiError {
    ApiError::new("ValidationError", message)
}

/// `[\w+=,.@-]*` with Java's ASCII `\w`, plus `extra` characters.
fn word_chars(s: &str, extra: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || "+=,.@-".contains(c) || extra.contains(c))
}

/// The tag key/value pattern `[\p{L}\p{Z}\p{N}_.:/=+\-@]`.
fn tag_chars(s: &str) -> bool {
    s.chars().all(|c| {
        c.is_alphabetic()
            || c.is_numeric()
            || (c.is_whitespace() && !c.is_control())
            || "_.:/=+-@".contains(c)
    })
}

/// The `arnType` pattern: no control characters but tab, LF and CR.
fn arn_chars(s: &str) -> bool {
    s.chars()
        .all(|c| matches!(c, '\t' | '\n' | '\r') || !c.is_control())
}

/// `Tags.member.N.Key`/`Value` (and any `<prefix>.member.N.<field>`),
/// in N order.
fn members(
    form: &BTreeMap<String, String>,
    prefix: &str,
) -> BTreeMap<u32, BTreeMap<String, String>> {
    let mut out: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
    let lead = format!("{prefix}.member.");
    for (k, v) in form {
        let Some(rest) = k.strip_prefix(&lead) else {
            continue;
        };
        let (n, field) = rest.split_once('.').unwrap_or((rest, ""));
        if let Ok(n) = n.parse::<u32>() {
            out.entry(n)
                .or_default()
                .insert(field.to_owned(), v.clone());
        }
    }
    out
}

/// `AssumeRole`'s members, as the form carries them.
pub(super) struct AssumeRoleRequest {
    pub(super) role_arn: Option<String>,
    pub(super) session_name: Option<String>,
    pub(super) duration: Option<String>,
    pub(super) source_identity: Option<String>,
    pub(super) external_id: Option<String>,
    pub(super) policy: Option<String>,
    pub(super) serial_number: Option<String>,
    pub(super) token_code: Option<String>,
    /// `(key, value)`; either may be missing.
    pub(super) tags: Vec<(Option<String>, Option<String>)>,
    pub(super) transitive_keys: Vec<String>,
    pub(super) policy_arns: Vec<Option<String>>,
    pub(super) minimum_token_size: Option<String>,
}

impl AssumeRoleRequest {
    pub(super) fn parse(form: &BTreeMap<String, String>) -> Self {
        let get = |k: &str| form.get(k).cloned();
        AssumeRoleRequest {
            role_arn: get("RoleArn"),
            session_name: get("RoleSessionName"),
            duration: get("DurationSeconds"),
            source_identity: get("SourceIdentity"),
            external_id: get("ExternalId"),
            policy: get("Policy"),
            serial_number: get("SerialNumber"),
            token_code: get("TokenCode"),
            tags: members(form, "Tags")
                .into_values()
                .map(|m| (m.get("Key").cloned(), m.get("Value").cloned()))
                .collect(),
            transitive_keys: members(form, "TransitiveTagKeys")
                .into_values()
                .filter_map(|m| m.get("").cloned())
                .collect(),
            policy_arns: members(form, "PolicyArns")
                .into_values()
                .map(|m| m.get("arn").cloned())
                .collect(),
            minimum_token_size: get("MinimumSessionTokenSize"),
        }
    }

    /// The model's constraint traits, every violation at once; the
    /// `DurationSeconds` and `MinimumSessionTokenSize` given.
    pub(super) fn validate(&self) -> Result<(Option<i64>, Option<i64>), ApiError> {
        let mut v = Vec::new();
        match &self.role_arn {
            None => v.push(apierr::not_null("roleArn")),
            Some(arn) => {
                apierr::check_pattern(
                    "roleArn",
                    arn,
                    r"[\u0009\u000A\u000D\u0020-\u007E\u0085\u00A0-\uD7FF\uE000-\uFFFD\u10000-\u10FFFF]+",
                    !arn.is_empty() && arn_chars(arn),
                    &mut v,
                );
                apierr::check_length("roleArn", arn, 20, 2048, &mut v);
            }
        }
        match &self.session_name {
            None => v.push(apierr::not_null("roleSessionName")),
            Some(name) => {
                apierr::check_pattern(
                    "roleSessionName",
                    name,
                    r"[\w+=,.@-]*",
                    word_chars(name, ""),
                    &mut v,
                );
                apierr::check_length("roleSessionName", name, 2, 64, &mut v);
            }
        }
        let duration = integer(
            "durationSeconds",
            self.duration.as_deref(),
            DURATION_RANGE,
            &mut v,
        );
        let minimum_token = integer(
            "minimumSessionTokenSize",
            self.minimum_token_size.as_deref(),
            (0, MAX_TOKEN as i64),
            &mut v,
        );
        if let Some(id) = &self.source_identity {
            apierr::check_pattern(
                "sourceIdentity",
                id,
                r"[\w+=,.@-]*",
                word_chars(id, ""),
                &mut v,
            );
            apierr::check_length("sourceIdentity", id, 2, 64, &mut v);
        }
        if let Some(id) = &self.external_id {
            apierr::check_pattern(
                "externalId",
                id,
                r"[\w+=,.@:\/-]*",
                word_chars(id, ":/"),
                &mut v,
            );
            apierr::check_length("externalId", id, 2, 1224, &mut v);
        }
        if let Some(policy) = &self.policy {
            let ok = !policy.is_empty()
                && policy
                    .chars()
                    .all(|c| matches!(c, '\t' | '\n' | '\r') || (' '..='\u{ff}').contains(&c));
            apierr::check_pattern(
                "policy",
                policy,
                r"[\u0009\u000A\u000D\u0020-\u00FF]+",
                ok,
                &mut v,
            );
        }
        if let Some(serial) = &self.serial_number {
            apierr::check_pattern(
                "serialNumber",
                serial,
                r"[\w+=/:,.@-]*",
                word_chars(serial, "/:"),
                &mut v,
            );
            apierr::check_length("serialNumber", serial, 9, 256, &mut v);
        }
        if let Some(code) = &self.token_code {
            apierr::check_pattern(
                "tokenCode",
                code,
                r"[\d]*",
                code.bytes().all(|b| b.is_ascii_digit()),
                &mut v,
            );
            apierr::check_length("tokenCode", code, 6, 6, &mut v);
        }
        if self.tags.len() > MAX_TAGS {
            v.push(format!(
                "Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to {MAX_TAGS}"
            ));
        }
        for (i, (key, value)) in self.tags.iter().enumerate() {
            let at = format!("tags.{}.member", i + 1);
            match key {
                None => v.push(apierr::not_null(&format!("{at}.key"))),
                Some(key) => {
                    apierr::check_pattern(
                        &format!("{at}.key"),
                        key,
                        r"[\p{L}\p{Z}\p{N}_.:/=+\-@]+",
                        !key.is_empty() && tag_chars(key),
                        &mut v,
                    );
                    apierr::check_length(&format!("{at}.key"), key, 1, 128, &mut v);
                }
            }
            match value {
                None => v.push(apierr::not_null(&format!("{at}.value"))),
                Some(value) => {
                    apierr::check_pattern(
                        &format!("{at}.value"),
                        value,
                        r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*",
                        tag_chars(value),
                        &mut v,
                    );
                    apierr::check_length(&format!("{at}.value"), value, 0, 256, &mut v);
                }
            }
        }
        if self.transitive_keys.len() > MAX_TAGS {
            v.push(format!(
                "Value '[{}]' at 'transitiveTagKeys' failed to satisfy constraint: Member must have length less than or equal to {MAX_TAGS}",
                self.transitive_keys.join(", ")
            ));
        }
        for (i, arn) in self.policy_arns.iter().enumerate() {
            let at = format!("policyArns.{}.member.arn", i + 1);
            if let Some(arn) = arn {
                apierr::check_length(&at, arn, 20, 2048, &mut v);
            }
        }
        validation(v)?;
        Ok((duration, minimum_token))
    }
}

/// An integer member within `range`; a value that is no integer is
/// reported too (AWS's wording for that is not known).
fn integer(field: &str, raw: Option<&str>, range: (i64, i64), v: &mut Vec<String>) -> Option<i64> {
    let raw = raw?;
    match raw.trim().parse::<i64>() {
        Ok(n) => {
            apierr::check_range(field, n, range.0, range.1, v);
            Some(n)
        }
        Err(_) => {
            v.push(format!(
                "Value '{raw}' at '{field}' failed to satisfy constraint: Member must be an integer"
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_lists() {
        let form: BTreeMap<String, String> = [
            ("Tags.member.2.Key", "b"),
            ("Tags.member.1.Key", "a"),
            ("Tags.member.1.Value", "1"),
            ("TransitiveTagKeys.member.1", "a"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let req = AssumeRoleRequest::parse(&form);
        assert_eq!(
            req.tags,
            vec![
                (Some("a".into()), Some("1".into())),
                (Some("b".into()), None)
            ]
        );
        assert_eq!(req.transitive_keys, vec!["a".to_owned()]);
    }

    #[test]
    fn patterns() {
        assert!(word_chars("alice@example.com", ""));
        assert!(!word_chars("a/b", ""));
        assert!(word_chars("a/b", "/"));
        assert!(tag_chars("Team Ops: é/1"));
        assert!(!tag_chars("a*b"));
        assert!(arn_chars("arn:aws:iam::1:role/x"));
        assert!(!arn_chars("arn\u{1}"));
    }
}
