//! The Session documents the simulator knows (spec section 14): their
//! parameters, how `StartSession` parameters resolve against them, and the
//! JSON content `GetDocument` returns.
//!
//! The managed documents' exact text is not public; parameter names,
//! defaults and properties follow the spec's table. Errors for bad
//! parameters use SSM's `InvalidParameters` code (the code SSM uses for
//! document-parameter mismatches in `SendCommand`; inferred for
//! `StartSession`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

pub use ssm_datachannel::SessionType;

/// How a parameter's value is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParamKind {
    /// Free text, 1+ characters.
    Text,
    /// A destination port, 1–65535.
    Port,
    /// A local port, 0–65535 (0 ⇒ OS-chosen).
    LocalPort,
    /// A host name or IP address.
    Host,
}

/// One declared document parameter.
#[derive(Debug, Clone, Copy)]
struct ParamSpec {
    name: &'static str,
    description: &'static str,
    kind: ParamKind,
    /// `None` ⇒ required.
    default: Option<&'static str>,
}

/// One built-in document.
#[derive(Debug, Clone, Copy)]
struct DocSpec {
    name: &'static str,
    description: &'static str,
    session_type: SessionType,
    params: &'static [ParamSpec],
}

const PORT_NUMBER: ParamSpec = ParamSpec {
    name: "portNumber",
    description: "(Optional) Port number of the server on the instance",
    kind: ParamKind::Port,
    default: Some("80"),
};
const LOCAL_PORT_NUMBER: ParamSpec = ParamSpec {
    name: "localPortNumber",
    description: "(Optional) Port number on local machine to forward traffic to. An open port is chosen at run-time if not provided",
    kind: ParamKind::LocalPort,
    default: Some("0"),
};
const COMMAND: ParamSpec = ParamSpec {
    name: "command",
    description: "(Required) The command to run on the instance",
    kind: ParamKind::Text,
    default: None,
};

const DOCUMENTS: &[DocSpec] = &[
    DocSpec {
        name: "SSM-SessionManagerRunShell",
        description: "Document to hold regional settings for Session Manager",
        session_type: SessionType::StandardStream,
        params: &[],
    },
    DocSpec {
        name: "AWS-StartInteractiveCommand",
        description: "Document to run a single interactive command on an instance",
        session_type: SessionType::InteractiveCommands,
        params: &[COMMAND],
    },
    DocSpec {
        name: "AWS-StartNonInteractiveCommand",
        description: "Document to run a single non-interactive command on an instance",
        session_type: SessionType::NonInteractiveCommands,
        params: &[COMMAND],
    },
    DocSpec {
        name: "AWS-StartPortForwardingSession",
        description: "Document to start port forwarding session over Session Manager",
        session_type: SessionType::Port,
        params: &[PORT_NUMBER, LOCAL_PORT_NUMBER],
    },
    DocSpec {
        name: "AWS-StartPortForwardingSessionToRemoteHost",
        description: "Document to start port forwarding session over Session Manager to a remote host",
        session_type: SessionType::Port,
        params: &[
            ParamSpec {
                name: "host",
                description: "(Required) The hostname or IP address of the destination server",
                kind: ParamKind::Host,
                default: None,
            },
            PORT_NUMBER,
            LOCAL_PORT_NUMBER,
        ],
    },
    DocSpec {
        name: "AWS-StartSSHSession",
        description: "Document to start SSH session over Session Manager",
        session_type: SessionType::Port,
        params: &[ParamSpec {
            name: "portNumber",
            description: "(Optional) Port number of SSH server on the instance",
            kind: ParamKind::Port,
            default: Some("22"),
        }],
    },
];

/// The document used when `StartSession` names none.
pub const DEFAULT_DOCUMENT: &str = "SSM-SessionManagerRunShell";

/// Why a document or its parameters were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// No such document (AWS code `InvalidDocument`).
    #[error("Document {0} does not exist.")]
    UnknownDocument(String),
    /// A parameter the document does not declare (`InvalidParameters`).
    #[error("Parameter \"{parameter}\" is not declared in document {document}.")]
    UnknownParameter {
        /// Document name.
        document: String,
        /// The undeclared parameter.
        parameter: String,
    },
    /// A required parameter is absent (`InvalidParameters`).
    #[error("Document {document} requires parameter \"{parameter}\".")]
    MissingParameter {
        /// Document name.
        document: String,
        /// The missing parameter.
        parameter: String,
    },
    /// A parameter value is not acceptable (`InvalidParameters`).
    #[error("Parameter \"{parameter}\" value \"{value}\" is invalid: {reason}.")]
    InvalidValue {
        /// The parameter.
        parameter: String,
        /// The offending value.
        value: String,
        /// What is expected.
        reason: String,
    },
}

impl DocumentError {
    /// The AWS error code (`__type`) SSM answers with.
    pub fn aws_code(&self) -> &'static str {
        match self {
            DocumentError::UnknownDocument(_) => "InvalidDocument",
            _ => "InvalidParameters",
        }
    }
}

/// A document with `StartSession` parameters applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedDocument {
    /// The document name (ARNs reduced to the name).
    pub name: String,
    /// Its session type.
    pub session_type: SessionType,
    /// Every declared parameter: the first value given, else the default.
    pub parameters: BTreeMap<String, String>,
    /// Port sessions: the properties the agent echoes to the client in the
    /// handshake (`portNumber`, `localPortNumber`, `type`, `host`).
    pub properties: BTreeMap<String, String>,
    /// Command sessions: the command to run.
    pub command: Option<String>,
}

impl ResolvedDocument {
    /// The remote `portNumber`, for Port documents.
    pub fn port_number(&self) -> Option<u16> {
        self.parameters.get("portNumber")?.parse().ok()
    }

    /// The `localPortNumber` (0 ⇒ OS-chosen), for port-forwarding documents.
    pub fn local_port_number(&self) -> Option<u16> {
        self.parameters.get("localPortNumber")?.parse().ok()
    }

    /// The remote `host`, for `AWS-StartPortForwardingSessionToRemoteHost`.
    pub fn host(&self) -> Option<&str> {
        self.parameters.get("host").map(String::as_str)
    }

    /// True when properties carry `type = LocalPortForwarding` (the client
    /// then uses basic or smux mode rather than a plain stream).
    pub fn is_local_port_forwarding(&self) -> bool {
        self.properties.get("type").map(String::as_str) == Some("LocalPortForwarding")
    }

    /// True when stdout and stderr travel separately (Output / StdErr
    /// payloads, then ExitCode): `AWS-StartNonInteractiveCommand`.
    pub fn separate_output_stream(&self) -> bool {
        self.session_type == SessionType::NonInteractiveCommands
    }
}

/// Strips an ARN (`arn:aws:ssm:<region>:<account>:document/<name>`) to the name.
fn bare_name(name: &str) -> &str {
    if name.starts_with("arn:")
        && let Some((_, rest)) = name.split_once(":document/")
    {
        return rest;
    }
    name
}

fn spec(name: &str) -> Option<&'static DocSpec> {
    let name = bare_name(name);
    DOCUMENTS.iter().find(|d| d.name == name)
}

/// Names of all built-in documents.
pub fn names() -> impl Iterator<Item = &'static str> {
    DOCUMENTS.iter().map(|d| d.name)
}

/// True when `name` (or its ARN) is a built-in document.
pub fn exists(name: &str) -> bool {
    spec(name).is_some()
}

fn check_value(param: &ParamSpec, value: &str) -> Result<(), DocumentError> {
    let invalid = |reason: &str| DocumentError::InvalidValue {
        parameter: param.name.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let numeric =
        !value.is_empty() && value.len() <= 5 && value.bytes().all(|b| b.is_ascii_digit());
    match param.kind {
        ParamKind::Text if value.is_empty() => Err(invalid("must not be empty")),
        ParamKind::Text => Ok(()),
        ParamKind::Port => match value.parse::<u16>() {
            Ok(p) if numeric && p != 0 => Ok(()),
            _ => Err(invalid("must be a port number from 1 to 65535")),
        },
        ParamKind::LocalPort => match value.parse::<u16>() {
            Ok(_) if numeric => Ok(()),
            _ => Err(invalid("must be a port number from 0 to 65535")),
        },
        ParamKind::Host => {
            let ok = !value.is_empty()
                && value.len() <= 253
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'));
            if ok {
                Ok(())
            } else {
                Err(invalid("must be a host name or IP address"))
            }
        }
    }
}

/// Resolves `StartSession`'s `DocumentName` and `Parameters`.
///
/// Omitted name ⇒ `SSM-SessionManagerRunShell`. Each parameter takes its
/// first value; absent optional parameters take their default.
pub fn resolve(
    name: Option<&str>,
    params: &BTreeMap<String, Vec<String>>,
) -> Result<ResolvedDocument, DocumentError> {
    let requested = name.unwrap_or(DEFAULT_DOCUMENT);
    let doc =
        spec(requested).ok_or_else(|| DocumentError::UnknownDocument(requested.to_owned()))?;
    if let Some(unknown) = params
        .keys()
        .find(|k| !doc.params.iter().any(|p| p.name == k.as_str()))
    {
        return Err(DocumentError::UnknownParameter {
            document: doc.name.to_owned(),
            parameter: unknown.clone(),
        });
    }
    let mut parameters = BTreeMap::new();
    for param in doc.params {
        let value = match params.get(param.name).and_then(|values| values.first()) {
            Some(value) => value.clone(),
            None => match param.default {
                Some(default) => default.to_owned(),
                None => {
                    return Err(DocumentError::MissingParameter {
                        document: doc.name.to_owned(),
                        parameter: param.name.to_owned(),
                    });
                }
            },
        };
        check_value(param, &value)?;
        parameters.insert(param.name.to_owned(), value);
    }

    let mut properties = BTreeMap::new();
    if doc.session_type == SessionType::Port {
        for key in ["portNumber", "localPortNumber", "host"] {
            if let Some(value) = parameters.get(key) {
                properties.insert(key.to_owned(), value.clone());
            }
        }
        if doc.name != "AWS-StartSSHSession" {
            properties.insert("type".to_owned(), "LocalPortForwarding".to_owned());
        }
    }
    Ok(ResolvedDocument {
        name: doc.name.to_owned(),
        session_type: doc.session_type,
        command: parameters.get("command").cloned(),
        parameters,
        properties,
    })
}

/// The document's JSON content as `GetDocument` returns it, or `None` for
/// an unknown name.
pub fn content(name: &str) -> Option<Value> {
    let doc = spec(name)?;
    let mut parameters = serde_json::Map::new();
    for p in doc.params {
        let mut decl = json!({ "type": "String", "description": p.description });
        if let Some(default) = p.default {
            decl["default"] = json!(default);
        }
        let pattern = match p.kind {
            ParamKind::Port => Some(
                "^([1-9]|[1-9][0-9]{1,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$",
            ),
            ParamKind::LocalPort => Some(
                "^([0-9]|[1-9][0-9]{1,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$",
            ),
            ParamKind::Host => Some("^[a-zA-Z0-9.:_-]{1,253}$"),
            ParamKind::Text => None,
        };
        if let Some(pattern) = pattern {
            decl["allowedPattern"] = json!(pattern);
        }
        parameters.insert(p.name.to_owned(), decl);
    }
    let mut body = json!({
        "schemaVersion": "1.0",
        "description": doc.description,
        "sessionType": doc.session_type.as_str(),
    });
    if !parameters.is_empty() {
        body["parameters"] = Value::Object(parameters);
    }
    match doc.session_type {
        SessionType::StandardStream => {
            body["inputs"] = json!({
                "s3BucketName": "",
                "s3KeyPrefix": "",
                "s3EncryptionEnabled": true,
                "cloudWatchLogGroupName": "",
                "cloudWatchEncryptionEnabled": true,
                "cloudWatchStreamingEnabled": false,
                "kmsKeyId": "",
                "runAsEnabled": false,
                "runAsDefaultUser": "",
                "idleSessionTimeout": "20",
                "maxSessionDuration": "",
                "shellProfile": { "windows": "", "linux": "" }
            });
        }
        SessionType::InteractiveCommands | SessionType::NonInteractiveCommands => {
            let separate = doc.session_type == SessionType::NonInteractiveCommands;
            let mut per_os = json!({ "commands": "{{ command }}", "runAsElevated": false });
            if separate {
                per_os["separateOutputStream"] = json!(true);
            }
            body["properties"] = json!({ "windows": per_os, "linux": per_os, "macos": per_os });
        }
        SessionType::Port => {
            let mut props = serde_json::Map::new();
            for p in doc.params {
                props.insert(p.name.to_owned(), json!(format!("{{{{ {} }}}}", p.name)));
            }
            if doc.name != "AWS-StartSSHSession" {
                props.insert("type".to_owned(), json!("LocalPortForwarding"));
            }
            body["properties"] = Value::Object(props);
        }
    }
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
            .collect()
    }

    #[test]
    fn default_document_is_shell() {
        let doc = resolve(None, &BTreeMap::new()).unwrap();
        assert_eq!(doc.name, DEFAULT_DOCUMENT);
        assert_eq!(doc.session_type.as_str(), "Standard_Stream");
        assert!(doc.properties.is_empty());
        assert_eq!(doc.command, None);
    }

    #[test]
    fn port_forwarding_defaults_and_properties() {
        let doc = resolve(Some("AWS-StartPortForwardingSession"), &BTreeMap::new()).unwrap();
        assert_eq!(doc.port_number(), Some(80));
        assert_eq!(doc.local_port_number(), Some(0));
        assert!(doc.is_local_port_forwarding());
        assert_eq!(doc.properties.get("localPortNumber").unwrap(), "0");

        let doc = resolve(
            Some("arn:aws:ssm:us-east-1::document/AWS-StartPortForwardingSessionToRemoteHost"),
            &params(&[("host", "db.internal"), ("portNumber", "5432")]),
        )
        .unwrap();
        assert_eq!(doc.name, "AWS-StartPortForwardingSessionToRemoteHost");
        assert_eq!(doc.host(), Some("db.internal"));
        assert_eq!(doc.port_number(), Some(5432));
        assert_eq!(doc.properties.get("host").unwrap(), "db.internal");
    }

    #[test]
    fn ssh_has_no_type() {
        let doc = resolve(Some("AWS-StartSSHSession"), &BTreeMap::new()).unwrap();
        assert_eq!(doc.port_number(), Some(22));
        assert!(!doc.is_local_port_forwarding());
        assert_eq!(doc.properties.len(), 1);
    }

    #[test]
    fn commands() {
        let doc = resolve(
            Some("AWS-StartNonInteractiveCommand"),
            &params(&[("command", "echo hi")]),
        )
        .unwrap();
        assert_eq!(doc.command.as_deref(), Some("echo hi"));
        assert!(doc.separate_output_stream());
        let err = resolve(Some("AWS-StartInteractiveCommand"), &BTreeMap::new()).unwrap_err();
        assert!(matches!(err, DocumentError::MissingParameter { .. }));
        assert_eq!(err.aws_code(), "InvalidParameters");
    }

    #[test]
    fn bad_inputs() {
        let err = resolve(Some("AWS-Nope"), &BTreeMap::new()).unwrap_err();
        assert_eq!(err.aws_code(), "InvalidDocument");
        let err = resolve(Some("AWS-StartSSHSession"), &params(&[("foo", "1")])).unwrap_err();
        assert!(matches!(err, DocumentError::UnknownParameter { .. }));
        for bad in ["0", "65536", "x", "-1", "+22", ""] {
            let err =
                resolve(Some("AWS-StartSSHSession"), &params(&[("portNumber", bad)])).unwrap_err();
            assert!(matches!(err, DocumentError::InvalidValue { .. }), "{bad}");
        }
        let err = resolve(
            Some("AWS-StartPortForwardingSessionToRemoteHost"),
            &params(&[("host", "a b")]),
        )
        .unwrap_err();
        assert!(matches!(err, DocumentError::InvalidValue { .. }));
    }

    #[test]
    fn contents_are_consistent() {
        for name in names() {
            let c = content(name).unwrap();
            let doc_type = c["sessionType"].as_str().unwrap();
            let empty = BTreeMap::new();
            let with_required: BTreeMap<String, Vec<String>> = c["parameters"]
                .as_object()
                .map(|ps| {
                    ps.iter()
                        .filter(|(_, d)| d.get("default").is_none())
                        .map(|(k, _)| (k.clone(), vec!["x".to_owned()]))
                        .collect()
                })
                .unwrap_or(empty);
            let resolved = resolve(Some(name), &with_required).unwrap();
            assert_eq!(resolved.session_type.as_str(), doc_type);
        }
        assert!(content("nope").is_none());
    }
}
