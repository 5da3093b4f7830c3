//! The simulator's SSM API: AWS JSON 1.1 over HTTP, `POST /` with
//! `X-Amz-Target: AmazonSSM.<Operation>`, as the AWS SDKs, the AWS CLI and
//! `session-manager-plugin` speak it (spec section 13).
//!
//! Any SigV4 signature is accepted (none is checked); the caller's name —
//! used as the session-id prefix and `Owner` — is the access key id from
//! the `Authorization` header's `Credential=`, or `sim-user`.
//!
//! Operations: StartSession, ResumeSession, TerminateSession,
//! DescribeSessions, GetDocument ([`sessions`]); DescribeInstanceInformation,
//! GetConnectionStatus, ListTagsForResource ([`instances`]); and on the
//! same endpoint the Resource Groups Tagging API's GetResources for EC2
//! instances ([`tagging`], `X-Amz-Target:
//! ResourceGroupsTaggingAPI_20170126.GetResources`).
//! Errors are HTTP 400 (500 for `InternalServerError`) with
//! `{"__type": code, "message": …}` and an `X-Amzn-ErrorType` header, which
//! the AWS SDKs map to their typed errors.
//!
//! `ListTagsForResource` with `ResourceType=ManagedInstance` answers for
//! hybrid ids (`mi-` + 17 hex) only and refuses EC2 ids with
//! `ValidationException`, as SSM does; EC2 instances' tags come from
//! `GetResources`.

pub mod error;
pub mod faults;
pub mod instances;
pub mod sessions;
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

use crate::registry::{Registry, sanitize_owner};

/// The content type of AWS JSON 1.1 requests and responses.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The API router: `POST /`. Merge it with the data-channel route.
pub fn router(registry: Registry) -> Router {
    Router::new().route("/", post(handle)).with_state(registry)
}

async fn handle(State(registry): State<Registry>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let operation = target.split_once('.').map_or(target, |(_, op)| op);
    if let Some(injected) = registry.api_faults().on_call(operation) {
        tracing::debug!(target, code = injected.code, "sim api injected error");
        return json_error(&injected.code, &injected.message, injected.status);
    }
    let owner = owner_from_authorization(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    let result = match target.split_once('.') {
        Some(("AmazonSSM", operation)) => dispatch(&registry, &owner, operation, &body),
        Some(("ResourceGroupsTaggingAPI_20170126", "GetResources")) => {
            parse(&body).and_then(|req| tagging::get_resources(&registry, req))
        }
        _ => Err(ApiError::new("UnknownOperationException", "")),
    };
    match &result {
        Ok(_) => tracing::debug!(target, "sim api ok"),
        Err(e) => tracing::debug!(target, code = e.code, "sim api error"),
    }
    respond(result, target)
}

fn dispatch(
    registry: &Registry,
    owner: &str,
    operation: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    match operation {
        "StartSession" => sessions::start_session(registry, owner, parse(body)?),
        "ResumeSession" => sessions::resume_session(registry, parse(body)?),
        "TerminateSession" => sessions::terminate_session(registry, parse(body)?),
        "DescribeSessions" => sessions::describe_sessions(registry, parse(body)?),
        "GetDocument" => sessions::get_document(parse(body)?),
        "DescribeInstanceInformation" => {
            instances::describe_instance_information(registry, parse(body)?)
        }
        "GetConnectionStatus" => instances::get_connection_status(registry, parse(body)?),
        "ListTagsForResource" => instances::list_tags_for_resource(registry, parse(body)?),
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
