//! [`SsmError`]: what can go wrong calling AWS (SSM, the Resource Groups
//! Tagging API, STS), in words for the person at the ssh prompt, and the
//! mapping from the SDKs' `SdkError`s to it.
//!
//! Service errors map by their AWS error code (`ProvideErrorMetadata`);
//! transport failures and timeouts become [`SsmError::Unreachable`];
//! credential-provider failures (found in the error's source chain)
//! become [`SsmError::Credentials`]. No text here ever holds a session
//! token: requests that carry tokens don't exist (tokens only come back in
//! responses), and messages are taken from error metadata, never from
//! response bodies of successful calls.

use std::error::Error as StdError;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ssm::config::http::HttpResponse;
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};

/// Which AWS API a call went to, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Service {
    /// Systems Manager.
    #[default]
    Ssm,
    /// The Resource Groups Tagging API (EC2 instance tags).
    Tagging,
    /// The Security Token Service.
    Sts,
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Service::Ssm => "SSM",
            Service::Tagging => "Resource Groups Tagging API",
            Service::Sts => "STS",
        })
    }
}

/// An AWS API failure the gateway's user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsmError {
    /// The target's SSM agent is not connected (stopped instance, agent
    /// down, no route to SSM, or a target in another account/region).
    #[error("target {target} is not connected to SSM")]
    TargetNotConnected {
        /// The target as sent to StartSession.
        target: String,
    },
    /// StartSession named a document that does not exist.
    #[error("document {document} not found")]
    InvalidDocument {
        /// The document name sent (or `SSM-SessionManagerRunShell`).
        document: String,
    },
    /// The session (or other resource) does not exist.
    #[error("not found: {0}")]
    DoesNotExist(String),
    /// IAM (or an SCP, or a session policy) refused the call.
    #[error("AWS denied the request: {0}")]
    AccessDenied(String),
    /// The account's API rate limit was hit (after the SDK's retries).
    #[error("AWS is throttling {service} requests; try again in a moment")]
    Throttled {
        /// The API.
        service: Service,
    },
    /// The document refused the parameters given.
    #[error("invalid session parameters: {0}")]
    InvalidParameters(String),
    /// A request member broke the API's constraints.
    #[error("the request was rejected as invalid: {0}")]
    Validation(String),
    /// No credentials were found, or they are expired or not valid.
    #[error("the gateway's AWS credentials are missing, expired or invalid: {0}")]
    Credentials(String),
    /// The endpoint could not be reached in time (connect error, DNS
    /// failure, timeout).
    #[error("cannot reach the {service} endpoint: {detail}")]
    Unreachable {
        /// The API.
        service: Service,
        /// What failed.
        detail: String,
    },
    /// Anything else, with AWS's code and message.
    #[error("{service} error {code}: {message}")]
    Other {
        /// The API.
        service: Service,
        /// The AWS error code (or a local label such as `ResponseError`).
        code: String,
        /// The message that came with it.
        message: String,
    },
}

/// What the failed call was about, to fill the typed variants.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CallContext<'a> {
    /// StartSession's target.
    pub target: Option<&'a str>,
    /// StartSession's document.
    pub document: Option<&'a str>,
    /// The API called.
    pub service: Service,
}

impl CallContext<'_> {
    /// A call to `service` about nothing in particular.
    pub(crate) fn of(service: Service) -> Self {
        CallContext {
            service,
            ..CallContext::default()
        }
    }
}

/// Error codes that mean "your credentials are no good".
const CREDENTIAL_CODES: &[&str] = &[
    "ExpiredTokenException",
    "ExpiredToken",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "AuthFailure",
];

/// Error codes of throttling.
const THROTTLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "TooManyUpdates",
    // The Resource Groups Tagging API's.
    "ThrottledException",
];

/// Maps an SDK error to an [`SsmError`].
pub(crate) fn from_sdk<E>(err: SdkError<E, HttpResponse>, ctx: CallContext<'_>) -> SsmError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    if let Some(cred) = find_credentials_error(&err) {
        return SsmError::Credentials(credentials_text(cred));
    }
    match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            match e.code() {
                Some(code) => from_code(code, e.message().unwrap_or("").to_owned(), ctx),
                // Not an AWS error document (a proxy's page, an endpoint
                // that doesn't serve this API): say what came back.
                None => SsmError::Other {
                    service: ctx.service,
                    code: format!("HTTP {}", service.raw().status().as_u16()),
                    message: "the answer carried no AWS error code (is the endpoint right?)"
                        .to_owned(),
                },
            }
        }
        SdkError::TimeoutError(_) => SsmError::Unreachable {
            service: ctx.service,
            detail: "the request timed out".to_owned(),
        },
        SdkError::DispatchFailure(failure) => {
            let detail = source_text(&err);
            SsmError::Unreachable {
                service: ctx.service,
                detail: if failure.is_timeout() {
                    format!("timed out ({detail})")
                } else {
                    detail
                },
            }
        }
        SdkError::ResponseError(_) => SsmError::Other {
            service: ctx.service,
            code: "ResponseError".to_owned(),
            message: format!("the response could not be read: {}", source_text(&err)),
        },
        // ConstructionFailure (e.g. no region configured) and future kinds.
        _ => SsmError::Other {
            service: ctx.service,
            code: "ClientError".to_owned(),
            message: source_text(&err),
        },
    }
}

/// Maps an AWS error code and message.
pub(crate) fn from_code(code: &str, message: String, ctx: CallContext<'_>) -> SsmError {
    match code {
        "TargetNotConnected" => SsmError::TargetNotConnected {
            target: ctx.target.unwrap_or("").to_owned(),
        },
        "InvalidDocument" => SsmError::InvalidDocument {
            document: ctx
                .document
                .unwrap_or("SSM-SessionManagerRunShell")
                .to_owned(),
        },
        "DoesNotExistException" | "InvalidResourceId" | "InvalidInstanceId" => {
            SsmError::DoesNotExist(message)
        }
        "AccessDeniedException" | "AccessDenied" => SsmError::AccessDenied(message),
        "InvalidParameters" => SsmError::InvalidParameters(message),
        "ValidationException" => SsmError::Validation(message),
        c if THROTTLE_CODES.contains(&c) => SsmError::Throttled {
            service: ctx.service,
        },
        c if CREDENTIAL_CODES.contains(&c) => SsmError::Credentials(if message.is_empty() {
            c.to_owned()
        } else {
            message
        }),
        _ => SsmError::Other {
            service: ctx.service,
            code: code.to_owned(),
            message,
        },
    }
}

/// The error's sources as one line, without the top-level "dispatch
/// failure" wording.
fn source_text<E, R>(err: &SdkError<E, R>) -> String
where
    E: StdError + 'static,
    R: std::fmt::Debug,
{
    match err.source() {
        Some(source) => chain_text(source),
        None => err.to_string(),
    }
}

/// An error and its sources as `a: b: c`, without `Debug` noise; a source
/// whose text its parent already shows is skipped.
fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut current = err.source();
    while let Some(e) = current {
        let text = e.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        current = e.source();
    }
    out
}

/// A credential-provider error anywhere in the source chain.
fn find_credentials_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a CredentialsError> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(cred) = e.downcast_ref::<CredentialsError>() {
            return Some(cred);
        }
        current = e.source();
    }
    None
}

fn credentials_text(err: &CredentialsError) -> String {
    let detail = chain_text(err);
    match err {
        CredentialsError::CredentialsNotLoaded(_) => {
            format!("no AWS credentials were found ({detail})")
        }
        CredentialsError::ProviderTimedOut(_) => {
            format!("loading AWS credentials timed out ({detail})")
        }
        _ => detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_variants_with_prompt_friendly_text() {
        let ctx = CallContext {
            target: Some("i-0123456789abcdef0"),
            document: Some("AWS-Nope"),
            service: Service::Ssm,
        };
        let e = from_code("TargetNotConnected", "x is not connected.".into(), ctx);
        assert_eq!(
            e.to_string(),
            "target i-0123456789abcdef0 is not connected to SSM"
        );
        let e = from_code("InvalidDocument", String::new(), ctx);
        assert_eq!(e.to_string(), "document AWS-Nope not found");
        let e = from_code("AccessDeniedException", "no ssm:StartSession".into(), ctx);
        assert_eq!(e.to_string(), "AWS denied the request: no ssm:StartSession");
        assert_eq!(
            from_code("ThrottlingException", "Rate exceeded".into(), ctx),
            SsmError::Throttled {
                service: Service::Ssm
            }
        );
        let tagging = CallContext::of(Service::Tagging);
        assert_eq!(
            from_code("ThrottledException", "Rate exceeded".into(), tagging).to_string(),
            "AWS is throttling Resource Groups Tagging API requests; try again in a moment"
        );
        assert!(matches!(
            from_code("ExpiredTokenException", "expired".into(), ctx),
            SsmError::Credentials(_)
        ));
        assert!(matches!(
            from_code("DoesNotExistException", "gone".into(), ctx),
            SsmError::DoesNotExist(_)
        ));
        assert_eq!(
            from_code("Weird", "m".into(), ctx).to_string(),
            "SSM error Weird: m"
        );
    }
}
