//! AWS-shaped API errors: an error code (`__type`), a message and an HTTP
//! status, plus builders for the messages AWS's request validation and SSM
//! produce. Rendered by the router as `{"__type": …, "message": …}`.

use std::fmt::Write as _;

/// An SSM API error as the wire carries it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// The AWS error code, e.g. `TargetNotConnected`.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// HTTP status (400 for client errors, 500 for `InternalServerError`).
    pub status: u16,
}

/// Longest value quoted in a validation message (longer ones are cut).
const QUOTE_MAX: usize = 256;

impl ApiError {
    /// A client error (HTTP 400).
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            status: 400,
        }
    }

    /// `ValidationException` with AWS's wording:
    /// `1 validation error detected: Value '…' at 'target' failed to satisfy
    /// constraint: …` (several violations are joined with `; `).
    pub fn validation(violations: Vec<String>) -> Self {
        let n = violations.len();
        let plural = if n == 1 { "error" } else { "errors" };
        ApiError::new(
            "ValidationException",
            format!(
                "{n} validation {plural} detected: {}",
                violations.join("; ")
            ),
        )
    }

    /// `TargetNotConnected`: `<target> is not connected.`
    pub fn target_not_connected(target: &str) -> Self {
        ApiError::new("TargetNotConnected", format!("{target} is not connected."))
    }

    /// `DoesNotExistException` for a session id.
    pub fn session_not_found(session_id: &str) -> Self {
        ApiError::new(
            "DoesNotExistException",
            format!("Session with id {session_id} does not exist."),
        )
    }

    /// `InvalidNextToken`.
    pub fn invalid_next_token() -> Self {
        ApiError::new("InvalidNextToken", "The specified token is not valid.")
    }

    /// `InternalServerError` (HTTP 500).
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            code: "InternalServerError",
            message: message.into(),
            status: 500,
        }
    }
}

/// Quotes a value for a validation message.
fn quote(value: &str) -> String {
    if value.chars().count() <= QUOTE_MAX {
        value.to_owned()
    } else {
        let mut cut: String = value.chars().take(QUOTE_MAX).collect();
        cut.push('…');
        cut
    }
}

/// `Value null at '<field>' failed to satisfy constraint: Member must not be null`
pub fn not_null(field: &str) -> String {
    format!("Value null at '{field}' failed to satisfy constraint: Member must not be null")
}

/// Checks a string's length (in characters) against `min..=max`.
pub fn check_length(field: &str, value: &str, min: usize, max: usize, out: &mut Vec<String>) {
    let len = value.chars().count();
    if len > max {
        out.push(format!(
            "Value '{}' at '{field}' failed to satisfy constraint: Member must have length less than or equal to {max}",
            quote(value)
        ));
    } else if len < min {
        out.push(format!(
            "Value '{}' at '{field}' failed to satisfy constraint: Member must have length greater than or equal to {min}",
            quote(value)
        ));
    }
}

/// Checks a string against a regular expression (shown as `pattern`).
pub fn check_pattern(field: &str, value: &str, pattern: &str, ok: bool, out: &mut Vec<String>) {
    if !ok {
        out.push(format!(
            "Value '{}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: {pattern}",
            quote(value)
        ));
    }
}

/// Checks an integer against `min..=max`.
pub fn check_range(field: &str, value: i64, min: i64, max: i64, out: &mut Vec<String>) {
    if value < min {
        out.push(format!(
            "Value '{value}' at '{field}' failed to satisfy constraint: Member must have value greater than or equal to {min}"
        ));
    } else if value > max {
        out.push(format!(
            "Value '{value}' at '{field}' failed to satisfy constraint: Member must have value less than or equal to {max}"
        ));
    }
}

/// Checks a string against an enum's values.
pub fn check_enum(field: &str, value: &str, allowed: &[&str], out: &mut Vec<String>) {
    if !allowed.contains(&value) {
        let mut set = String::new();
        for (i, a) in allowed.iter().enumerate() {
            if i > 0 {
                set.push_str(", ");
            }
            let _ = write!(set, "{a}");
        }
        out.push(format!(
            "Value '{}' at '{field}' failed to satisfy constraint: Member must satisfy enum value set: [{set}]",
            quote(value)
        ));
    }
}

/// Turns collected violations into `Err(ValidationException)`.
pub fn finish(violations: Vec<String>) -> Result<(), ApiError> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(violations))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_wording() {
        let mut v = Vec::new();
        check_length("target", &"x".repeat(401), 1, 400, &mut v);
        let e = ApiError::validation(v.clone());
        assert_eq!(e.code, "ValidationException");
        assert!(
            e.message
                .starts_with("1 validation error detected: Value 'xxx")
        );
        assert!(e.message.ends_with(
            "at 'target' failed to satisfy constraint: Member must have length less than or equal to 400"
        ));
        check_range("maxResults", 2, 5, 50, &mut v);
        let e = ApiError::validation(v);
        assert!(e.message.starts_with("2 validation errors detected: "));
        assert!(e.message.contains("; Value '2' at 'maxResults'"));
    }
}
