//! JSON and binary payloads carried inside data-channel messages (spec §1.2,
//! §3.3, §4.1, §6, §7.2, §8).
//!
//! Field order matches what the Go client and agent marshal, so encoding these
//! structs with `serde_json` reproduces the real bytes exactly.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The first TEXT frame on a new WebSocket: authenticates the socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenDataChannelInput {
    #[serde(rename = "MessageSchemaVersion")]
    pub message_schema_version: String,
    #[serde(rename = "RequestId")]
    pub request_id: String,
    #[serde(rename = "TokenValue")]
    pub token_value: String,
    #[serde(rename = "ClientId")]
    pub client_id: String,
    #[serde(
        rename = "ClientVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub client_version: Option<String>,
}

/// Acknowledge payload; acks are selective, by sequence number only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledge {
    #[serde(rename = "AcknowledgedMessageType")]
    pub message_type: String,
    #[serde(rename = "AcknowledgedMessageId")]
    pub message_id: String,
    #[serde(rename = "AcknowledgedMessageSequenceNumber")]
    pub sequence_number: i64,
    #[serde(rename = "IsSequentialMessage")]
    pub is_sequential: bool,
}

impl Acknowledge {
    /// The ack for a received stream-data message.
    pub fn for_message(message_type: &str, id: Uuid, sequence_number: i64) -> Self {
        Self {
            message_type: message_type.to_owned(),
            message_id: id.hyphenated().to_string(),
            sequence_number,
            is_sequential: true,
        }
    }
}

/// One action the agent asks the client to perform during the handshake.
///
/// The parameters stay raw JSON: their shape depends on the action, and the
/// agent's key order (`SessionType` before `Properties`) must survive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestedClientAction {
    #[serde(rename = "ActionType")]
    pub action_type: String,
    #[serde(rename = "ActionParameters")]
    pub action_parameters: Box<serde_json::value::RawValue>,
}

/// PayloadType 5, agent → client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandshakeRequest {
    #[serde(rename = "AgentVersion")]
    pub agent_version: String,
    #[serde(rename = "RequestedClientActions")]
    pub requested_client_actions: Vec<RequestedClientAction>,
}

/// Parameters of the `SessionType` action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionTypeParameters {
    #[serde(rename = "SessionType")]
    pub session_type: String,
    /// Document properties for Port sessions (a sorted string map); null for
    /// shell-like sessions.
    #[serde(rename = "Properties")]
    pub properties: Option<serde_json::Value>,
}

/// Result of one requested action, in the client's HandshakeResponse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessedClientAction {
    #[serde(rename = "ActionType")]
    pub action_type: String,
    /// 1 success, 2 failed, 3 unsupported.
    #[serde(rename = "ActionStatus")]
    pub action_status: i32,
    #[serde(rename = "ActionResult")]
    pub action_result: Option<serde_json::Value>,
    #[serde(rename = "Error")]
    pub error: String,
}

/// ActionStatus values of a processed action.
pub mod action_status {
    pub const SUCCESS: i32 = 1;
    pub const FAILED: i32 = 2;
    pub const UNSUPPORTED: i32 = 3;
}

/// PayloadType 6, client → agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandshakeResponse {
    #[serde(rename = "ClientVersion")]
    pub client_version: String,
    #[serde(rename = "ProcessedClientActions")]
    pub processed_client_actions: Vec<ProcessedClientAction>,
    #[serde(rename = "Errors")]
    pub errors: Option<Vec<String>>,
}

/// PayloadType 7, agent → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeComplete {
    /// Go duration: integer nanoseconds.
    #[serde(rename = "HandshakeTimeToComplete")]
    pub handshake_time_to_complete: i64,
    #[serde(rename = "CustomerMessage")]
    pub customer_message: String,
}

/// Terminal size, PayloadType 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    pub cols: u32,
    pub rows: u32,
}

/// `channel_closed` payload, service → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelClosed {
    #[serde(rename = "MessageId")]
    pub message_id: String,
    #[serde(rename = "CreatedDate")]
    pub created_date: String,
    #[serde(rename = "DestinationId")]
    pub destination_id: String,
    #[serde(rename = "SessionId")]
    pub session_id: String,
    #[serde(rename = "MessageType")]
    pub message_type: String,
    #[serde(rename = "SchemaVersion")]
    pub schema_version: i64,
    #[serde(rename = "Output", default)]
    pub output: String,
}

/// `agent_session_state` payload, agent → service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSessionState {
    #[serde(rename = "SchemaVersion")]
    pub schema_version: i64,
    #[serde(rename = "SessionState")]
    pub session_state: String,
    #[serde(rename = "SessionId")]
    pub session_id: String,
}

/// The 4-byte big-endian flag payloads (PayloadType 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// Basic port mode: close the agent's TCP connection.
    DisconnectToPort,
    /// Port sessions: end the session.
    TerminateSession,
    /// Mux port mode: the agent could not dial the destination.
    ConnectToPortError,
    Unknown(u32),
}

impl Flag {
    /// The wire value.
    pub fn to_u32(self) -> u32 {
        match self {
            Self::DisconnectToPort => 1,
            Self::TerminateSession => 2,
            Self::ConnectToPortError => 3,
            Self::Unknown(v) => v,
        }
    }

    /// Parses a flag payload; `None` unless it is exactly 4 bytes.
    pub fn from_payload(payload: &[u8]) -> Option<Self> {
        let b: [u8; 4] = payload.try_into().ok()?;
        Some(match u32::from_be_bytes(b) {
            1 => Self::DisconnectToPort,
            2 => Self::TerminateSession,
            3 => Self::ConnectToPortError,
            v => Self::Unknown(v),
        })
    }

    /// The 4-byte payload.
    pub fn to_payload(self) -> [u8; 4] {
        self.to_u32().to_be_bytes()
    }
}

/// Parses an ExitCode payload (`EXIT_CODE: <n>`, spec §7.3).
pub fn parse_exit_code(payload: &[u8]) -> Option<i32> {
    let text = std::str::from_utf8(payload).ok()?;
    text.trim()
        .strip_prefix("EXIT_CODE:")
        .and_then(|n| n.trim().parse().ok())
}

/// Formats an ExitCode payload.
pub fn format_exit_code(code: i32) -> String {
    format!("EXIT_CODE: {code}")
}
