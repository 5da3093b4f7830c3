//! Session operations of the sim's SSM API: StartSession, ResumeSession,
//! TerminateSession, DescribeSessions, and GetDocument (the session
//! documents). Request members and constraints follow the SSM API model.
//! Sessions belong to the account and region they were started in; the
//! others see none of them (see [`super`]).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{self as apierr, ApiError};
use super::{epoch_seconds, paginate};
use crate::documents;
use crate::identity::Caller;
use crate::location::Location;
use crate::registry::{Registry, SessionEntry, SessionFilter, SessionStatus};

/// `DescribeSessions` page size when `MaxResults` is absent (inferred).
const DESCRIBE_SESSIONS_DEFAULT_MAX: i64 = 20;

/// `StartSession` request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartSessionRequest {
    target: Option<String>,
    document_name: Option<String>,
    reason: Option<String>,
    parameters: Option<BTreeMap<String, Vec<String>>>,
}

/// `ResumeSession` / `TerminateSession` request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionIdRequest {
    session_id: Option<String>,
}

/// One `DescribeSessions` filter (lower-case member names, as modelled).
#[derive(Debug, Deserialize)]
pub struct SessionFilterJson {
    key: Option<String>,
    value: Option<String>,
}

/// `DescribeSessions` request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeSessionsRequest {
    state: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
    filters: Option<Vec<SessionFilterJson>>,
}

/// `GetDocument` request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetDocumentRequest {
    name: Option<String>,
    version_name: Option<String>,
    document_version: Option<String>,
    document_format: Option<String>,
}

/// `DocumentName` pattern of `StartSession`.
pub const DOCUMENT_NAME_PATTERN: &str = r"^[a-zA-Z0-9_\-.:/]{3,128}$";

/// Checks `StartSession`'s members against the API model's constraints
/// (`ValidationException` listing every violation).
pub fn validate_start_session(
    target: &str,
    document: Option<&str>,
    params: &BTreeMap<String, Vec<String>>,
    reason: Option<&str>,
) -> Result<(), ApiError> {
    let mut v = Vec::new();
    apierr::check_length("target", target, 1, 400, &mut v);
    if let Some(name) = document {
        let ok = (3..=128).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:/".contains(&b));
        apierr::check_pattern("documentName", name, DOCUMENT_NAME_PATTERN, ok, &mut v);
    }
    if let Some(reason) = reason {
        let ok = (1..=256).contains(&reason.chars().count()) && !reason.contains(['\n', '\r']);
        apierr::check_pattern("reason", reason, "^.{1,256}$", ok, &mut v);
    }
    for (key, values) in params {
        let n = key.chars().count();
        if !(1..=255).contains(&n) {
            v.push(format!(
                "Value '{key}' at 'parameters' failed to satisfy constraint: Map keys must satisfy constraint: [Member must have length less than or equal to 255, Member must have length greater than or equal to 1]"
            ));
        }
        if values
            .iter()
            .any(|value| !(1..=65535).contains(&value.chars().count()))
        {
            v.push(format!(
                "Value at 'parameters.{key}' failed to satisfy constraint: Map value must satisfy constraint: [Member must satisfy constraint: [Member must have length less than or equal to 65535, Member must have length greater than or equal to 1]]"
            ));
        }
    }
    apierr::finish(v)
}

pub(super) fn start_session(
    registry: &Registry,
    caller: &Caller,
    here: &Location,
    req: StartSessionRequest,
) -> Result<Value, ApiError> {
    let target = req
        .target
        .ok_or_else(|| ApiError::validation(vec![apierr::not_null("target")]))?;
    let started = registry.start_session(
        caller,
        here,
        &target,
        req.document_name.as_deref(),
        &req.parameters.unwrap_or_default(),
        req.reason.as_deref(),
    )?;
    Ok(json!({
        "SessionId": started.session_id,
        "TokenValue": started.token,
        "StreamUrl": started.stream_url,
    }))
}

fn session_id(req: SessionIdRequest) -> Result<String, ApiError> {
    let id = req
        .session_id
        .ok_or_else(|| ApiError::validation(vec![apierr::not_null("sessionId")]))?;
    let mut v = Vec::new();
    apierr::check_length("sessionId", &id, 1, 96, &mut v);
    apierr::finish(v)?;
    Ok(id)
}

pub(super) fn resume_session(
    registry: &Registry,
    here: &Location,
    req: SessionIdRequest,
) -> Result<Value, ApiError> {
    let id = session_id(req)?;
    Ok(match registry.resume_session(here, &id)? {
        Some(started) => json!({
            "SessionId": started.session_id,
            "TokenValue": started.token,
            "StreamUrl": started.stream_url,
        }),
        None => json!({ "SessionId": id }),
    })
}

pub(super) fn terminate_session(
    registry: &Registry,
    here: &Location,
    req: SessionIdRequest,
) -> Result<Value, ApiError> {
    let id = session_id(req)?;
    registry.terminate_at(here, &id)?;
    Ok(json!({ "SessionId": id }))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff]Z` (UTC), the form SSM's filter takes.
pub fn parse_utc(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hour, minute, second) = (t.next()??, t.next()??, t.next()??);
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0..61).contains(&second)
        && frac.bytes().all(|b| b.is_ascii_digit());
    if !valid {
        return None;
    }
    // Days from civil (proleptic Gregorian), 1970-01-01 = 0.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    let millis: u64 = format!("{frac:0<3}")
        .get(..3)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis))
}

const SESSION_FILTER_KEYS: &[&str] = &[
    "InvokedAfter",
    "InvokedBefore",
    "Target",
    "Owner",
    "Status",
    "SessionId",
    "AccessType",
];

fn session_json(e: &SessionEntry) -> Value {
    let mut s = json!({
        "SessionId": e.session_id,
        "Target": e.target,
        "Status": e.status.as_str(),
        "StartDate": epoch_seconds(e.started),
        "DocumentName": e.document.name,
        "Owner": e.owner,
        "AccessType": "Standard",
    });
    if let Some(ended) = e.ended {
        s["EndDate"] = json!(epoch_seconds(ended));
    }
    if let Some(reason) = &e.reason {
        s["Reason"] = json!(reason);
    }
    s
}

pub(super) fn describe_sessions(
    registry: &Registry,
    here: &Location,
    req: DescribeSessionsRequest,
) -> Result<Value, ApiError> {
    let mut v = Vec::new();
    let Some(state) = req.state else {
        return Err(ApiError::validation(vec![apierr::not_null("state")]));
    };
    apierr::check_enum("state", &state, &["Active", "History"], &mut v);
    let max = req.max_results.unwrap_or(DESCRIBE_SESSIONS_DEFAULT_MAX);
    apierr::check_range("maxResults", max, 1, 200, &mut v);
    if req.filters.as_ref().is_some_and(Vec::is_empty) {
        v.push(
            "Value '[]' at 'filters' failed to satisfy constraint: Member must have length greater than or equal to 1".to_owned(),
        );
    }
    let filters_json = req.filters.unwrap_or_default();
    if filters_json.len() > 6 {
        v.push(
            "Value at 'filters' failed to satisfy constraint: Member must have length less than or equal to 6".to_owned(),
        );
    }
    let mut filters = Vec::new();
    let mut access_type_mismatch = false;
    for (i, f) in filters_json.iter().enumerate() {
        let n = i + 1;
        let (Some(key), Some(value)) = (&f.key, &f.value) else {
            v.push(apierr::not_null(&format!("filters.{n}.member.key/value")));
            continue;
        };
        if !SESSION_FILTER_KEYS.contains(&key.as_str()) {
            return Err(ApiError::new(
                "InvalidFilterKey",
                format!("The filter key {key} is not valid."),
            ));
        }
        apierr::check_length(&format!("filters.{n}.member.value"), value, 1, 400, &mut v);
        let bad_value = |why: &str| {
            format!(
                "Value '{value}' at 'filters.{n}.member.value' failed to satisfy constraint: {why}"
            )
        };
        match key.as_str() {
            "InvokedAfter" | "InvokedBefore" => match parse_utc(value) {
                Some(t) if key == "InvokedAfter" => filters.push(SessionFilter::InvokedAfter(t)),
                Some(t) => filters.push(SessionFilter::InvokedBefore(t)),
                None => v.push(bad_value("Member must be a date like 2018-08-29T00:00:00Z")),
            },
            "Target" => filters.push(SessionFilter::Target(value.clone())),
            "Owner" => filters.push(SessionFilter::Owner(value.clone())),
            "SessionId" => filters.push(SessionFilter::SessionId(value.clone())),
            "Status" => match SessionStatus::parse(value) {
                Some(st) => filters.push(SessionFilter::Status(st)),
                None => v.push(bad_value(
                    "Member must satisfy enum value set: [Connected, Connecting, Disconnected, Terminated, Terminating, Failed]",
                )),
            },
            _ => match value.as_str() {
                "Standard" => {}
                "JustInTime" => access_type_mismatch = true,
                _ => v.push(bad_value(
                    "Member must satisfy enum value set: [Standard, JustInTime]",
                )),
            },
        }
    }
    apierr::finish(v)?;
    let entries = if access_type_mismatch {
        Vec::new()
    } else {
        registry.describe_at(here, state == "Active", &filters)
    };
    let max = usize::try_from(max).unwrap_or(1);
    let (page, next) = paginate(entries, "DescribeSessions", max, req.next_token.as_deref())?;
    let mut out = json!({ "Sessions": page.iter().map(session_json).collect::<Vec<_>>() });
    if let Some(next) = next {
        out["NextToken"] = json!(next);
    }
    Ok(out)
}

/// Fixed creation date of the built-in documents (2018-08-29T00:00:00Z).
const DOCUMENTS_CREATED: u64 = 1_535_500_800;

pub(super) fn get_document(req: GetDocumentRequest) -> Result<Value, ApiError> {
    let name = req
        .name
        .ok_or_else(|| ApiError::validation(vec![apierr::not_null("name")]))?;
    let mut v = Vec::new();
    let pattern_ok = (3..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:/".contains(&b));
    apierr::check_pattern("name", &name, DOCUMENT_NAME_PATTERN, pattern_ok, &mut v);
    if let Some(version_name) = &req.version_name {
        let ok = (1..=128).contains(&version_name.len())
            && version_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
        apierr::check_pattern(
            "versionName",
            version_name,
            r"^[a-zA-Z0-9_\-.]{1,128}$",
            ok,
            &mut v,
        );
    }
    let format = req.document_format.unwrap_or_else(|| "JSON".to_owned());
    apierr::check_enum("documentFormat", &format, &["YAML", "JSON", "TEXT"], &mut v);
    if let Some(version) = &req.document_version {
        let ok = version == "$LATEST"
            || version == "$DEFAULT"
            || (version.starts_with(|c: char| c.is_ascii_digit() && c != '0')
                && version.bytes().all(|b| b.is_ascii_digit()));
        apierr::check_pattern(
            "documentVersion",
            version,
            "([$]LATEST|[$]DEFAULT|^[1-9][0-9]*$)",
            ok,
            &mut v,
        );
    }
    apierr::finish(v)?;
    let content = documents::content(&name).ok_or_else(|| {
        ApiError::new("InvalidDocument", "The specified document does not exist.")
    })?;
    let version_ok = req
        .document_version
        .as_deref()
        .is_none_or(|dv| matches!(dv, "1" | "$LATEST" | "$DEFAULT"))
        && req.version_name.is_none();
    if !version_ok {
        return Err(ApiError::new(
            "InvalidDocumentVersion",
            "The document version is not valid or does not exist.",
        ));
    }
    // JSON text is also valid YAML, so YAML requests get the same text.
    let text = serde_json::to_string_pretty(&content)
        .map_err(|e| ApiError::internal(format!("cannot render document: {e}")))?;
    let bare = name
        .rsplit_once(":document/")
        .map_or(name.as_str(), |(_, n)| n);
    Ok(json!({
        "Name": bare,
        "CreatedDate": epoch_seconds(UNIX_EPOCH + Duration::from_secs(DOCUMENTS_CREATED)),
        "DocumentVersion": "1",
        "Status": "Active",
        "Content": text,
        "DocumentType": "Session",
        "DocumentFormat": format,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_parsing() {
        let t = parse_utc("2018-08-29T00:00:00Z").unwrap();
        assert_eq!(epoch_seconds(t), DOCUMENTS_CREATED as f64);
        let t = parse_utc("2024-02-29T12:34:56.5Z").unwrap();
        assert_eq!(epoch_seconds(t), 1_709_210_096.5);
        assert!(parse_utc("2024-13-01T00:00:00Z").is_none());
        assert!(parse_utc("2024-01-01 00:00:00").is_none());
        assert!(parse_utc("yesterday").is_none());
    }
}
