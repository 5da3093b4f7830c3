//! The client's half of the handshake (spec §6): turning the agent's
//! HandshakeRequest into our HandshakeResponse. Pure functions; the channel
//! task sends the result.
//!
//! KMS encryption is refused with a clear error instead of hanging: the
//! response marks the action failed (the agent then cancels the session) and
//! the channel ends with "KMS-encrypted sessions are not supported yet".

use std::collections::BTreeMap;

use super::payloads::{
    HandshakeRequest, HandshakeResponse, ProcessedClientAction, SessionTypeParameters,
    action_status,
};
use super::transport::CLIENT_VERSION;

/// What to answer, and what we learnt.
#[derive(Debug)]
pub struct Answer {
    /// The HandshakeResponse to send.
    pub response: HandshakeResponse,
    /// The SessionType the agent announced, if any.
    pub session_type: Option<String>,
    /// Its properties as strings (Port sessions).
    pub properties: BTreeMap<String, String>,
    /// The agent asked for KMS encryption, which we do not support.
    pub kms_requested: bool,
}

/// Processes each requested action in order, as the plugin does.
pub fn answer(req: &HandshakeRequest) -> Answer {
    let mut out = Answer {
        response: HandshakeResponse {
            client_version: CLIENT_VERSION.into(),
            processed_client_actions: Vec::new(),
            errors: None,
        },
        session_type: None,
        properties: BTreeMap::new(),
        kms_requested: false,
    };
    let mut errors = Vec::new();
    for action in &req.requested_client_actions {
        let kind = action.action_type.as_str();
        let processed = match kind {
            "SessionType" => {
                match serde_json::from_str::<SessionTypeParameters>(action.action_parameters.get())
                {
                    Ok(p) => {
                        out.properties = string_properties(p.properties.as_ref());
                        out.session_type = Some(p.session_type);
                        processed(kind, action_status::SUCCESS, None, String::new())
                    }
                    Err(e) => processed(
                        kind,
                        action_status::FAILED,
                        None,
                        format!("Failed to process action SessionType: {e}"),
                    ),
                }
            }
            "KMSEncryption" => {
                out.kms_requested = true;
                processed(
                    kind,
                    action_status::FAILED,
                    None,
                    "Failed to process action KMSEncryption: KMS-encrypted sessions are not supported yet".into(),
                )
            }
            // The plugin answers unknown actions with status 0 and puts the
            // "unsupported" value in ActionResult; agents expect exactly that.
            other => processed(
                other,
                0,
                Some(serde_json::json!(action_status::UNSUPPORTED)),
                format!("Unsupported action {other}"),
            ),
        };
        if !processed.error.is_empty() {
            errors.push(processed.error.clone());
        }
        out.response.processed_client_actions.push(processed);
    }
    if !errors.is_empty() {
        out.response.errors = Some(errors);
    }
    out
}

fn processed(
    action_type: &str,
    action_status: i32,
    action_result: Option<serde_json::Value>,
    error: String,
) -> ProcessedClientAction {
    ProcessedClientAction {
        action_type: action_type.to_owned(),
        action_status,
        action_result,
        error,
    }
}

/// Document properties as strings, as the plugin decodes them.
fn string_properties(props: Option<&serde_json::Value>) -> BTreeMap<String, String> {
    let Some(serde_json::Value::Object(map)) = props else {
        return BTreeMap::new();
    };
    map.iter()
        .map(|(k, v)| {
            let s = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> HandshakeRequest {
        serde_json::from_str(json).expect("request")
    }

    #[test]
    fn port_session_type_is_accepted_with_properties() {
        let a = answer(&request(
            r#"{"AgentVersion":"3.3.987.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Port","Properties":{"portNumber":"22","type":"LocalPortForwarding"}}}]}"#,
        ));
        assert_eq!(a.session_type.as_deref(), Some("Port"));
        assert_eq!(a.properties["portNumber"], "22");
        assert!(!a.kms_requested);
        // Byte-identical to the plugin's response (spec vector V4).
        assert_eq!(
            serde_json::to_string(&a.response).expect("json"),
            r#"{"ClientVersion":"1.2.677.0","ProcessedClientActions":[{"ActionType":"SessionType","ActionStatus":1,"ActionResult":null,"Error":""}],"Errors":null}"#
        );
    }

    #[test]
    fn kms_is_refused_clearly() {
        let a = answer(&request(
            r#"{"AgentVersion":"3.3.987.0","RequestedClientActions":[{"ActionType":"SessionType","ActionParameters":{"SessionType":"Standard_Stream","Properties":null}},{"ActionType":"KMSEncryption","ActionParameters":{"KMSKeyId":"arn:aws:kms:k","Challenge":"AAAA"}}]}"#,
        ));
        assert!(a.kms_requested);
        let kms = &a.response.processed_client_actions[1];
        assert_eq!(kms.action_status, action_status::FAILED);
        assert!(
            kms.error
                .contains("KMS-encrypted sessions are not supported yet")
        );
        assert_eq!(a.response.errors.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn unknown_actions_are_reported_unsupported() {
        let a = answer(&request(
            r#"{"AgentVersion":"3.3.987.0","RequestedClientActions":[{"ActionType":"Teleport","ActionParameters":{}}]}"#,
        ));
        let p = &a.response.processed_client_actions[0];
        assert_eq!(
            (p.action_status, p.action_result.clone()),
            (0, Some(serde_json::json!(3)))
        );
        assert_eq!(p.error, "Unsupported action Teleport");
    }
}
