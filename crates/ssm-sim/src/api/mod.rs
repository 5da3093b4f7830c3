//! The simulator's AWS APIs on one endpoint, `POST /`: SSM in AWS JSON
//! 1.1 (`X-Amz-Target: AmazonSSM.<Operation>`, as the AWS SDKs, the AWS
//! CLI and `session-manager-plugin` speak it; spec section 13), the
//! Resource Groups Tagging API's GetResources (`X-Amz-Target:
//! ResourceGroupsTaggingAPI_20170126.GetResources`, [`tagging`]), and STS
//! in the AWS query protocol (a form body, no target; [`sts`]).
//!
//! No SigV4 signature is checked. The caller is the access key id of the
//! `Authorization` header's `Credential=` ([`crate::identity`]): a key
//! the sim did not issue is an IAM user of the sim's home account named
//! after it (`sim-user` when unsigned); a key issued by the sim's
//! `AssumeRole` is that role session, in the role's account, refused once
//! expired (`ExpiredTokenException`) or without its session token
//! (`UnrecognizedClientException`). The caller's ARN is a session's
//! `Owner`; its user or role session name starts the session id.
//!
//! Every request is served at a [`Location`]: the caller's account and the
//! region of the signature's credential scope
//! (`Credential=AKID/DATE/REGION/SERVICE/aws4_request`; the sim's home
//! region when unsigned or unreadable) — what AWS's separate regional
//! endpoints and separate accounts amount to on one endpoint. Operations
//! see only that location's instances (DescribeInstanceInformation,
//! GetConnectionStatus, ListTagsForResource, StartSession, GetResources)
//! and sessions (DescribeSessions, ResumeSession, TerminateSession).
//!
//! SSM operations: StartSession, ResumeSession, TerminateSession,
//! DescribeSessions, GetDocument ([`sessions`]); DescribeInstanceInformation,
//! GetConnectionStatus, ListTagsForResource ([`instances`]). Errors are
//! HTTP 400 (500 for `InternalServerError`) with
//! `{"__type": code, "message": …}` and an `X-Amzn-ErrorType` header, which
//! the AWS SDKs map to their typed errors. Every request is counted and
//! may be answered with an injected error first ([`faults`]).
//!
//! # Audit against AWS
//!
//! Checked against the service models (botocore's `service-2.json`, whose
//! constraint traits the Rust SDKs leave out), the SDK docs, and public
//! reports of real answers; where AWS's behaviour is unknown the sim's
//! choice is named.
//!
//! - **Model constraints → `ValidationException`** with AWS's wording
//!   (`N validation error(s) detected: Value '…' at 'member' failed to
//!   satisfy constraint: …`), every violation at once. Checked:
//!   StartSession (`Target` 1–400, `DocumentName`
//!   `^[a-zA-Z0-9_\-.:/]{3,128}$`, `Reason` `^.{1,256}$`, parameter names
//!   1–255 and values 1–65535), ResumeSession/TerminateSession
//!   (`SessionId` 1–96), DescribeSessions (`State` Active|History,
//!   `MaxResults` 1–200, `Filters` 1–6, values 1–400),
//!   DescribeInstanceInformation (`MaxResults` 5–50, filter value lists
//!   1–100, legacy keys an enum, string keys at least 1 character),
//!   GetConnectionStatus (`Target` 1–400), ListTagsForResource
//!   (`ResourceType` enum), GetDocument (`Name` as `DocumentName`,
//!   `VersionName` `^[a-zA-Z0-9_\-.]{1,128}$`, `DocumentVersion`,
//!   `DocumentFormat`). Required members missing are `Value null at …`.
//! - **Id formats**: session ids `<caller name>-<17 hex>` (real ids start
//!   with the IAM user or role session name; whether SSM rewrites
//!   characters of it is unknown); instance ids `i-`/`mi-` + 8–17 hex.
//!   ListTagsForResource `ManagedInstance` takes only `mi-` + 17 hex and
//!   refuses others with `ValidationException` `resourceId should be in
//!   format mi-[0-9a-f]{17} for resource type ManagedInstance` (boto3
//!   #4265, #4609; a 2021 report quotes the id after `resourceId`).
//! - **Filter keys**: DescribeSessions' `SessionFilterKey` enum (unknown
//!   key → `InvalidFilterKey`); DescribeInstanceInformation's legacy enum
//!   and the string keys (`tag:<k>`, `tag-key`, `SourceIds`, …; unknown →
//!   `InvalidFilterKey`). Giving both filter styles at once is refused
//!   with `InvalidInstanceInformationFilterValue` — AWS's answer is
//!   documented only as "cannot be combined"; the code is the sim's choice.
//! - **Pagination**: DescribeInstanceInformation default 10, 5–50;
//!   DescribeSessions 1–200 (the default, 20, is inferred); tokens are
//!   opaque and a foreign one is `InvalidNextToken`. GetResources: see
//!   [`tagging`] (1–100 resources, 100–500 tags per page, `""` as the last
//!   token).
//! - **Error types**: each operation answers only its modelled errors,
//!   except: TerminateSession of an unknown id answers
//!   `DoesNotExistException` although the model lists only
//!   `InternalServerError` for it (whether AWS succeeds silently is
//!   unknown); StartSession with parameters its document rejects answers
//!   `InvalidParameters`, not in StartSession's model (AWS's answer is
//!   unknown); ResumeSession's `AccessDeniedException` comes only from the
//!   `refuse_resume` fault. Errors carry `message`; AWS spells the member
//!   `Message` for some (tagging's `InvalidParameterException`, seen on the
//!   wire) — the SDKs read both.
//! - **Authentication errors**: expired issued credentials →
//!   `ExpiredTokenException` "The security token included in the request
//!   is expired" (HTTP 400, JSON services) and `ExpiredToken` (HTTP 403,
//!   STS); an issued key without its token → `UnrecognizedClientException`
//!   / `InvalidClientTokenId`. Plain keys are never refused (the sim has no
//!   IAM users to check them against).
//! - **Accounts and regions**: an instance or session of another account
//!   or region is answered for exactly as an unknown one: StartSession
//!   `TargetNotConnected` `<id> is not connected.`, GetConnectionStatus
//!   `notconnected`, ListTagsForResource `InvalidResourceId`,
//!   DescribeInstanceInformation's `InstanceIds` filter matches nothing,
//!   ResumeSession/TerminateSession `DoesNotExistException`, GetResources
//!   leaves the ARN out (documented for ARNs it does not find). AWS keeps
//!   accounts and regions apart, so another account's instance cannot be
//!   told from a missing one; whether its answers for sessions of another
//!   account (reached with a session id alone) are `DoesNotExistException`
//!   or `AccessDeniedException` is not known. The sim serves any region
//!   name (one with no instances is empty); a real region that is not
//!   enabled, or a name that is no region, has no endpoint at all.
//! - **Tagging API, STS**: audited in their own modules ([`tagging`],
//!   [`sts`]); Run As (the `SSMSessionRunAs` session tag) against
//!   amazon-ssm-agent's source in [`crate::agent::run_as`].
//! - **Injected faults**: throttling codes are HTTP 400
//!   (`ThrottlingException` for SSM, `ThrottledException` "Rate exceeded"
//!   for tagging, `Throttling` for STS), internal errors 500
//!   ([`faults::status_for`]).

pub mod error;
pub mod faults;
pub mod instances;
pub mod sessions;
pub mod sts;
pub mod tagging;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use error::ApiError;

use crate::identity::{Caller, CallerError};
use crate::location::{Location, is_region_name};
use crate::registry::{Registry, sanitize_owner};

/// The content type of AWS JSON 1.1 requests and responses.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The API router: `POST /`. Merge it with the data-channel route.
pub fn router(registry: Registry) -> Router {
    Router::new().route("/", post(handle)).with_state(registry)
}

async fn handle(State(registry): State<Registry>, headers: HeaderMap, body: Bytes) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let access_key_id = access_key_from_authorization(authorization);
    let region = region_from_authorization(authorization)
        .unwrap_or_else(|| registry.location().region.clone());
    if sts::is_query_request(&headers) {
        return sts::handle(
            &registry,
            &headers,
            access_key_id.as_deref(),
            &region,
            &body,
        );
    }
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let operation = target.split_once('.').map_or(target, |(_, op)| op);
    if let Some(injected) = registry.api_faults().on_call(operation) {
        tracing::debug!(target, code = injected.code, "sim api injected error");
        return json_error(&injected.code, &injected.message, injected.status);
    }
    let token = headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok());
    let caller = match registry.caller(access_key_id.as_deref(), token, &region) {
        Ok(caller) => caller,
        // What AWS's JSON services answer for such credentials.
        Err(CallerError::Expired) => {
            return json_error(
                "ExpiredTokenException",
                "The security token included in the request is expired",
                400,
            );
        }
        Err(CallerError::InvalidToken) => {
            return json_error(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
                400,
            );
        }
    };
    let here = served_at(&caller, region);
    let result = match target.split_once('.') {
        Some(("AmazonSSM", operation)) => dispatch(&registry, &caller, &here, operation, &body),
        Some(("ResourceGroupsTaggingAPI_20170126", "GetResources")) => {
            parse(&body).and_then(|req| tagging::get_resources(&registry, &here, req))
        }
        _ => Err(ApiError::new("UnknownOperationException", "")),
    };
    match &result {
        Ok(_) => tracing::debug!(target, "sim api ok"),
        Err(e) => tracing::debug!(target, code = e.code, "sim api error"),
    }
    respond(result, target)
}

/// Where a request is served: the caller's account (the home account for
/// plain keys, the role's for credentials of the sim's `AssumeRole`) in
/// the request's region.
pub fn served_at(caller: &Caller, region: String) -> Location {
    Location {
        region,
        account: caller.account.clone(),
    }
}

fn dispatch(
    registry: &Registry,
    caller: &Caller,
    here: &Location,
    operation: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    match operation {
        "StartSession" => sessions::start_session(registry, caller, here, parse(body)?),
        "ResumeSession" => sessions::resume_session(registry, here, parse(body)?),
        "TerminateSession" => sessions::terminate_session(registry, here, parse(body)?),
        "DescribeSessions" => sessions::describe_sessions(registry, here, parse(body)?),
        "GetDocument" => sessions::get_document(parse(body)?),
        "DescribeInstanceInformation" => {
            instances::describe_instance_information(registry, here, parse(body)?)
        }
        "GetConnectionStatus" => instances::get_connection_status(registry, here, parse(body)?),
        "ListTagsForResource" => instances::list_tags_for_resource(registry, here, parse(body)?),
        _ => Err(ApiError::new("UnknownOperationException", "")),
    }
}

fn respond(result: Result<Value, ApiError>, target: &str) -> Response {
    match result {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(mut e) => {
            if e.code == "UnknownOperationException" && e.message.is_empty() {
                e.message = format!("Unknown operation: {target:?}");
            }
            json_error(e.code, &e.message, e.status)
        }
    }
}

/// An AWS JSON 1.1 error: `{"__type": code, "message": …}` with the
/// `X-Amzn-ErrorType` header and `status` (400 when not a valid status).
fn json_error(code: &str, message: &str, status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let body = serde_json::json!({ "__type": code, "message": message });
    let mut response = json_response(status, &body);
    if let Ok(v) = HeaderValue::from_str(code) {
        response.headers_mut().insert("x-amzn-errortype", v);
    }
    response
}

/// An AWS JSON 1.1 response with a fresh `X-Amzn-RequestId`.
fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        h.insert("x-amzn-requestid", v);
    }
    response
}

/// Parses a request body (empty ⇒ `{}`); malformed JSON or wrong member
/// types ⇒ `SerializationException`.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| ApiError::new("SerializationException", e.to_string()))
}

/// The caller name from a SigV4 `Authorization` header
/// (`… Credential=AKID/date/region/ssm/aws4_request, …`), sanitised; else
/// `sim-user`.
pub fn owner_from_authorization(header: Option<&str>) -> String {
    let key_id = header
        .and_then(|h| h.split_once("Credential="))
        .map(|(_, rest)| rest.split(['/', ',', ' ']).next().unwrap_or(""))
        .unwrap_or("");
    sanitize_owner(key_id)
}

/// The access key id of a SigV4 `Authorization` header
/// (`… Credential=AKID/date/region/service/aws4_request, …`), raw; the
/// caller's name made from it is sanitised ([`sanitize_owner`]).
pub fn access_key_from_authorization(header: Option<&str>) -> Option<String> {
    let key = header?
        .split_once("Credential=")?
        .1
        .split(['/', ',', ' '])
        .next()?;
    (!key.is_empty() && key.len() <= 128).then(|| key.to_owned())
}

/// The region of a SigV4 `Authorization` header's credential scope
/// (`… Credential=AKID/date/region/service/aws4_request, …`); `None` when
/// there is none or it is not spelled like a region.
pub fn region_from_authorization(header: Option<&str>) -> Option<String> {
    let scope = header?
        .split_once("Credential=")?
        .1
        .split([',', ' '])
        .next()?;
    let mut parts = scope.split('/');
    let (_key, _date, region) = (parts.next()?, parts.next()?, parts.next()?);
    is_region_name(region).then(|| region.to_owned())
}

/// Epoch seconds (millisecond precision), as AWS JSON timestamps.
pub fn epoch_seconds(t: SystemTime) -> f64 {
    let ms = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis();
    ms as f64 / 1000.0
}

/// Takes one page of `items` after the position encoded in `next_token`.
/// Tokens are opaque hex of `<operation>:<offset>`; a token from another
/// operation or out of range ⇒ `InvalidNextToken`.
pub fn paginate<T>(
    items: Vec<T>,
    operation: &str,
    max: usize,
    next_token: Option<&str>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let start = match next_token {
        None => 0,
        Some(token) => hex::decode(token)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|s| {
                let (op, offset) = s.split_once(':')?;
                (op == operation).then(|| offset.parse::<usize>().ok())?
            })
            .filter(|offset| *offset <= items.len())
            .ok_or_else(ApiError::invalid_next_token)?,
    };
    let end = start.saturating_add(max).min(items.len());
    let next = (end < items.len()).then(|| hex::encode(format!("{operation}:{end}")));
    let page = items.into_iter().skip(start).take(end - start).collect();
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_parsing() {
        let h = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=abc";
        assert_eq!(owner_from_authorization(Some(h)), "AKIDEXAMPLE");
        assert_eq!(owner_from_authorization(None), "sim-user");
        assert_eq!(owner_from_authorization(Some("Credential=/x")), "sim-user");
        assert_eq!(owner_from_authorization(Some("Credential=a$b!c/x")), "abc");
        assert_eq!(
            access_key_from_authorization(Some(h)).as_deref(),
            Some("AKIDEXAMPLE")
        );
        assert_eq!(access_key_from_authorization(Some("Credential=/x")), None);
        assert_eq!(access_key_from_authorization(None), None);
    }

    #[test]
    fn region_parsing() {
        let h = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/eu-west-1/ssm/aws4_request, SignedHeaders=host, Signature=abc";
        assert_eq!(
            region_from_authorization(Some(h)).as_deref(),
            Some("eu-west-1")
        );
        for bad in [
            "AWS4-HMAC-SHA256 Credential=AKID/20240101, Signature=abc",
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/EU WEST/ssm/aws4_request",
            "AWS4-HMAC-SHA256 Credential=AKID/20240101//ssm/aws4_request",
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/eu-west-1%/ssm/aws4_request",
            "Credential=",
            "Bearer x",
        ] {
            assert_eq!(region_from_authorization(Some(bad)), None, "{bad}");
        }
        assert_eq!(region_from_authorization(None), None);
    }

    #[test]
    fn pagination() {
        let items: Vec<u32> = (0..12).collect();
        let (p1, t1) = paginate(items.clone(), "Op", 5, None).unwrap();
        assert_eq!(p1, vec![0, 1, 2, 3, 4]);
        let (p2, t2) = paginate(items.clone(), "Op", 5, t1.as_deref()).unwrap();
        assert_eq!(p2, vec![5, 6, 7, 8, 9]);
        let (p3, t3) = paginate(items.clone(), "Op", 5, t2.as_deref()).unwrap();
        assert_eq!(p3, vec![10, 11]);
        assert!(t3.is_none());
        assert_eq!(
            paginate(items.clone(), "Other", 5, t1.as_deref())
                .unwrap_err()
                .code,
            "InvalidNextToken"
        );
        assert!(paginate(items, "Op", 5, Some("zz")).is_err());
    }

    #[test]
    fn epoch() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(epoch_seconds(t), 1_700_000_000.123);
    }
}
