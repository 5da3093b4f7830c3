//! AWS STS on the simulator's endpoint: `GetCallerIdentity` and
//! `AssumeRole` in the AWS query protocol — `POST /` with a
//! `application/x-www-form-urlencoded` body `Action=…&Version=2011-06-15&…`
//! and no `X-Amz-Target` — answered in XML in the namespace
//! `https://sts.amazonaws.com/doc/2011-06-15/`, as `aws-sdk-sts`, the AWS
//! CLI and botocore speak it. Who the caller is and the credentials
//! `AssumeRole` issues live in [`crate::identity`].
//!
//! What is modelled, from the API reference, the STS model (botocore's
//! `sts/2011-06-15/service-2.json`, the constraint traits) and public
//! reports of real answers:
//! - errors: `<ErrorResponse><Error><Type>Sender</Type><Code>…</Code>
//!   <Message>…</Message></Error><RequestId>…</RequestId></ErrorResponse>`,
//!   HTTP 400, and 403 for `AccessDenied`, `ExpiredToken` and
//!   `InvalidClientTokenId` (reports show 403 for all three); `Receiver`
//!   for 5xx;
//! - `GetCallerIdentity`: `Arn`, `UserId`, `Account` of the caller — an
//!   IAM user of the home account named after a plain access key id, or
//!   the assumed-role session of credentials the sim issued, in the
//!   role's account;
//! - `AssumeRole`: the model's constraints first, all reported at once as
//!   `ValidationError` (`1 validation error detected: Value '…' at
//!   'roleSessionName' failed to satisfy constraint: Member must satisfy
//!   regular expression pattern: [\w+=,.@-]*`, the wording of real
//!   answers); a `RoleArn` not shaped `arn:p:s:r:a:resource` is
//!   `ValidationError` `<arn> is invalid`; a role of an account the sim
//!   does not hold (its home `account` and `[[accounts]]`), of another
//!   partition than the request's region's, or an ARN that names no IAM
//!   role, is `AccessDenied` `User: <caller> is not authorized to perform:
//!   sts:AssumeRole on resource: <arn>` (AWS answers so for roles it
//!   cannot or may not assume, malformed role ARNs included); a role of
//!   any account the sim holds may be assumed (no trust policies), and the
//!   credentials act in that account;
//!   `DurationSeconds` above the role's `MaxSessionDuration` (every sim
//!   role has the config's `role_max_session_duration`, default 3600 s
//!   like a new IAM role) or above 1 h when chaining roles is
//!   `ValidationError` with AWS's messages; session tags: duplicate keys
//!   (case-insensitive), `TransitiveTagKeys` not among the tags, and tags
//!   overriding the calling session's transitive tags are
//!   `InvalidParameterValue`; transitive tags and the source identity
//!   carry over when chaining; `SourceIdentity` starting with `aws:` is
//!   refused (documented as reserved); a `Policy` that is not a JSON
//!   object is `MalformedPolicyDocument`;
//! - the answer: `Credentials` (`ASIA…` key id, secret, session token,
//!   `Expiration` in ISO-8601 UTC), `AssumedRoleUser` (`Arn`
//!   `arn:p:sts::account:assumed-role/<role name>/<session name>`,
//!   `AssumedRoleId` `AROA…:<session name>`), `SourceIdentity`,
//!   `SessionTokenSize` (bytes), `SessionTokenUtilization` (percent of
//!   the 4,096-byte limit) and `PackedPolicySize` (deprecated; AWS
//!   announced it now repeats `SessionTokenUtilization`). The token grows
//!   with the tags, policies and source identity it carries and is padded
//!   to `MinimumSessionTokenSize` (0–4096); past 4,096 bytes the request
//!   is `PackedPolicyTooLarge`, the error AWS kept for that limit.
//!
//! Unknown, and the sim's choice: the exact wording of the refusals of an
//! `aws:` source identity, of a changed source identity when chaining
//! (the sim: `AccessDenied` for `sts:SetSourceIdentity`), of a bad
//! `DurationSeconds` number, of a missing or unknown `Action` (the sim:
//! `InvalidAction`, `Could not find operation … for version 2011-06-15`)
//! and of a malformed policy; how a list of tags is quoted in a
//! validation message (left out); how big a real token is and how its
//! claims are packed (the sim: 700 bytes plus the plaintext of tags,
//! policies and source identity; so how many tags fit is approximate);
//! the refusal's wording (the sim uses the older packed-policy message);
//! the plaintext session-policy limit (2048 characters, not enforced). `ExternalId`, `TransitiveTagKeys`,
//! `PolicyArns`, `SerialNumber`/`TokenCode` (MFA) and `ProvidedContexts`
//! are validated and otherwise accepted: the sim has no trust policies.
//! No signature is verified.

mod assume_role;
mod request;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::identity::{Caller, CallerError};
use crate::registry::Registry;

/// The STS XML namespace.
pub const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// The API version the sim speaks.
pub const VERSION: &str = "2011-06-15";

/// True for a request of the query protocol (a form body, no target).
pub fn is_query_request(headers: &HeaderMap) -> bool {
    headers.get("x-amz-target").is_none()
        && headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            })
}

/// Serves one STS request: counts it, applies injected faults, resolves
/// the caller and dispatches on `Action`.
pub(super) fn handle(
    registry: &Registry,
    headers: &HeaderMap,
    access_key_id: Option<&str>,
    region: &str,
    body: &[u8],
) -> Response {
    let form: std::collections::BTreeMap<String, String> =
        form_urlencoded::parse(body).into_owned().collect();
    let action = form.get("Action").map(String::as_str).unwrap_or("");
    if let Some(injected) = registry.api_faults().on_call(action) {
        tracing::debug!(action, code = injected.code, "sim sts injected error");
        return error_response(&injected.code, &injected.message, injected.status);
    }
    let token = headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok());
    let caller = match registry.caller(access_key_id, token, region) {
        Ok(caller) => caller,
        Err(CallerError::Expired) => {
            return error_response(
                "ExpiredToken",
                "The security token included in the request is expired",
                403,
            );
        }
        Err(CallerError::InvalidToken) => {
            return error_response(
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
                403,
            );
        }
    };
    let version = form.get("Version").map(String::as_str).unwrap_or("");
    let result = match (action, version) {
        ("GetCallerIdentity", VERSION) => Ok(get_caller_identity(&caller)),
        ("AssumeRole", VERSION) => {
            let here = super::served_at(&caller, region.to_owned());
            assume_role::assume_role(registry, &caller, &here, &form)
        }
        _ => Err(ApiError::new(
            "InvalidAction",
            format!("Could not find operation {action} for version {version}"),
        )),
    };
    match result {
        Ok(xml) => {
            tracing::debug!(action, "sim sts ok");
            xml_response(StatusCode::OK, xml)
        }
        Err(e) => {
            tracing::debug!(action, code = e.code, "sim sts error");
            error_response(e.code, &e.message, e.status)
        }
    }
}

/// Escapes text for XML content and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `<name>escaped text</name>`.
pub(super) fn element(name: &str, text: &str) -> String {
    format!("<{name}>{}</{name}>", escape(text))
}

/// `<{action}Response>` around `<{action}Result>` and the request id.
pub(super) fn envelope(action: &str, result: &str) -> String {
    format!(
        "<{action}Response xmlns=\"{NAMESPACE}\">\n  <{action}Result>{result}</{action}Result>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</{action}Response>\n",
        uuid::Uuid::new_v4()
    )
}

/// An STS error: `Sender` for client errors, `Receiver` for 5xx.
pub(super) fn error_response(code: &str, message: &str, status: u16) -> Response {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    let xml = format!(
        "<ErrorResponse xmlns=\"{NAMESPACE}\">\n  <Error>\n    <Type>{kind}</Type>\n    {}\n    {}\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
        element("Code", code),
        element("Message", message),
        uuid::Uuid::new_v4()
    );
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    xml_response(status, xml)
}

fn xml_response(status: StatusCode, xml: String) -> Response {
    let mut response = (status, xml).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        h.insert("x-amzn-requestid", v);
    }
    response
}

fn get_caller_identity(caller: &Caller) -> String {
    envelope(
        "GetCallerIdentity",
        &format!(
            "\n    {}\n    {}\n    {}\n  ",
            element("Arn", &caller.arn),
            element("UserId", &caller.user_id),
            element("Account", &caller.account)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(element("Code", "x&y"), "<Code>x&amp;y</Code>");
    }
}
