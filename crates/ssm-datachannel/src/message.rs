//! The binary message of the Session Manager data channel (spec §2–3).
//!
//! Owns the byte layout of one WebSocket BINARY frame: a fixed 120-byte header
//! (HeaderLength 116, space-padded MessageType, swapped UUID halves, SHA-256
//! digest) followed by the payload, which runs to the end of the frame.
//! It knows nothing about sequencing, acks or sessions: see `reliable`.

use bytes::{BufMut, Bytes, BytesMut};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Value every writer puts in HeaderLength: the offset of PayloadLength.
pub const HEADER_LENGTH: u32 = 116;
/// Bytes before the payload when HeaderLength is 116.
pub const HEADER_SIZE: usize = 120;
/// Largest frame we accept. The real peers never send more than ~1 KiB of
/// payload per message; this guards memory against a hostile peer.
pub const MAX_FRAME: usize = 1 << 20;
const TYPE_LEN: usize = 32;

/// Why a frame could not be decoded. Never carries the payload itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame of {0} bytes is shorter than the 120-byte header")]
    Short(usize),
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    Oversized(usize),
    #[error("header length {header_length} points past the end of a {frame_len}-byte frame")]
    Truncated {
        header_length: u32,
        frame_len: usize,
    },
    #[error("header length is 0")]
    ZeroHeaderLength,
    #[error("message type is not ASCII text")]
    BadType,
    #[error("payload digest does not match its SHA-256")]
    DigestMismatch,
}

/// The MessageType field. Unknown strings are kept so that a caller can log
/// and ignore them, as the plugin does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageType {
    InputStreamData,
    OutputStreamData,
    Acknowledge,
    ChannelClosed,
    StartPublication,
    PausePublication,
    AgentSessionState,
    Other(String),
}

impl MessageType {
    /// The wire string of this type.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InputStreamData => "input_stream_data",
            Self::OutputStreamData => "output_stream_data",
            Self::Acknowledge => "acknowledge",
            Self::ChannelClosed => "channel_closed",
            Self::StartPublication => "start_publication",
            Self::PausePublication => "pause_publication",
            Self::AgentSessionState => "agent_session_state",
            Self::Other(s) => s,
        }
    }

    /// Parses a wire string (already stripped of padding).
    pub fn parse(s: &str) -> Self {
        match s {
            "input_stream_data" => Self::InputStreamData,
            "output_stream_data" => Self::OutputStreamData,
            "acknowledge" => Self::Acknowledge,
            "channel_closed" => Self::ChannelClosed,
            "start_publication" => Self::StartPublication,
            "pause_publication" => Self::PausePublication,
            "agent_session_state" => Self::AgentSessionState,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Stream-data types consume sequence numbers and are acknowledged.
    pub fn is_stream_data(&self) -> bool {
        matches!(self, Self::InputStreamData | Self::OutputStreamData)
    }
}

/// The PayloadType field (spec §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadType {
    Unset,
    Output,
    Error,
    Size,
    Parameter,
    HandshakeRequest,
    HandshakeResponse,
    HandshakeComplete,
    EncChallengeRequest,
    EncChallengeResponse,
    Flag,
    StdErr,
    ExitCode,
    Unknown(u32),
}

impl PayloadType {
    /// The wire value.
    pub fn to_u32(self) -> u32 {
        match self {
            Self::Unset => 0,
            Self::Output => 1,
            Self::Error => 2,
            Self::Size => 3,
            Self::Parameter => 4,
            Self::HandshakeRequest => 5,
            Self::HandshakeResponse => 6,
            Self::HandshakeComplete => 7,
            Self::EncChallengeRequest => 8,
            Self::EncChallengeResponse => 9,
            Self::Flag => 10,
            Self::StdErr => 11,
            Self::ExitCode => 12,
            Self::Unknown(v) => v,
        }
    }

    /// From the wire value; unknown values are preserved.
    pub fn from_u32(v: u32) -> Self {
        match v {
            0 => Self::Unset,
            1 => Self::Output,
            2 => Self::Error,
            3 => Self::Size,
            4 => Self::Parameter,
            5 => Self::HandshakeRequest,
            6 => Self::HandshakeResponse,
            7 => Self::HandshakeComplete,
            8 => Self::EncChallengeRequest,
            9 => Self::EncChallengeResponse,
            10 => Self::Flag,
            11 => Self::StdErr,
            12 => Self::ExitCode,
            other => Self::Unknown(other),
        }
    }
}

/// One data-channel message, decoded. `payload` is a slice of the frame it
/// came from, so decoding copies no payload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub message_type: MessageType,
    pub schema_version: u32,
    /// Unix epoch milliseconds.
    pub created_date: u64,
    pub sequence_number: i64,
    pub flags: u64,
    pub message_id: Uuid,
    pub payload_type: PayloadType,
    pub payload: Bytes,
}

/// Flags written on stream data and control messages (spec §2 "Flags").
pub mod flags {
    /// First message of a stream (the agent sets it on its seq 0).
    pub const SYN: u64 = 1;
    /// Acknowledge and agent control messages carry SYN|FIN.
    pub const CONTROL: u64 = 3;
}

impl Message {
    /// A new message with a fresh id and the current time.
    pub fn new(
        message_type: MessageType,
        sequence_number: i64,
        flags: u64,
        payload_type: PayloadType,
        payload: Bytes,
    ) -> Self {
        Self {
            message_type,
            schema_version: 1,
            created_date: now_millis(),
            sequence_number,
            flags,
            message_id: Uuid::new_v4(),
            payload_type,
            payload,
        }
    }

    /// Serialises to the exact wire bytes. Fails only if the message type is
    /// longer than 32 bytes.
    pub fn encode(&self) -> Result<Bytes, EncodeError> {
        let mut out = BytesMut::with_capacity(HEADER_SIZE + self.payload.len());
        self.encode_into(&mut out)?;
        Ok(out.freeze())
    }

    /// Appends the wire bytes to `out`.
    pub fn encode_into(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let ty = self.message_type.as_str().as_bytes();
        if ty.len() > TYPE_LEN {
            return Err(EncodeError::TypeTooLong(ty.len()));
        }
        let payload_len =
            u32::try_from(self.payload.len()).map_err(|_| EncodeError::PayloadTooLong)?;
        out.reserve(HEADER_SIZE + self.payload.len());
        out.put_u32(HEADER_LENGTH);
        out.put_slice(ty);
        out.put_bytes(b' ', TYPE_LEN - ty.len());
        out.put_u32(self.schema_version);
        out.put_u64(self.created_date);
        out.put_i64(self.sequence_number);
        out.put_u64(self.flags);
        let id = self.message_id.as_bytes();
        out.put_slice(&id[8..16]);
        out.put_slice(&id[0..8]);
        out.put_slice(&Sha256::digest(&self.payload));
        out.put_u32(self.payload_type.to_u32());
        out.put_u32(payload_len);
        out.put_slice(&self.payload);
        Ok(())
    }

    /// Decodes one frame and checks the payload digest.
    pub fn decode(frame: Bytes) -> Result<Self, DecodeError> {
        Self::decode_inner(frame, true)
    }

    /// Decodes one frame without checking the digest: for
    /// `start_publication`/`pause_publication`, which peers accept unchecked.
    pub fn decode_unchecked(frame: Bytes) -> Result<Self, DecodeError> {
        Self::decode_inner(frame, false)
    }

    fn decode_inner(frame: Bytes, check_digest: bool) -> Result<Self, DecodeError> {
        let len = frame.len();
        if len > MAX_FRAME {
            return Err(DecodeError::Oversized(len));
        }
        let header: &[u8; HEADER_SIZE] = frame
            .get(..HEADER_SIZE)
            .and_then(|h| h.try_into().ok())
            .ok_or(DecodeError::Short(len))?;
        let header_length = be_u32(header, 0);
        if header_length == 0 {
            return Err(DecodeError::ZeroHeaderLength);
        }
        let payload_start = header_length as usize + 4;
        if payload_start > len {
            return Err(DecodeError::Truncated {
                header_length,
                frame_len: len,
            });
        }
        let type_text = std::str::from_utf8(&header[4..36]).map_err(|_| DecodeError::BadType)?;
        // Like the Go reader: strip NULs from both ends, then white space.
        // What is left must be a plain word: real peers only send
        // lower-case names, and anything else could not round-trip.
        let type_text = type_text.trim_matches('\0').trim();
        if type_text.is_empty() || !type_text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(DecodeError::BadType);
        }
        let message_type = MessageType::parse(type_text);
        let mut id = [0u8; 16];
        id[0..8].copy_from_slice(&header[72..80]);
        id[8..16].copy_from_slice(&header[64..72]);
        let payload = frame.slice(payload_start..);
        // The control messages start/pause_publication are never validated
        // by real peers; everything else must carry a matching digest.
        let skip = matches!(
            message_type,
            MessageType::StartPublication | MessageType::PausePublication
        );
        if check_digest && !skip && Sha256::digest(&payload).as_slice() != &header[80..112] {
            return Err(DecodeError::DigestMismatch);
        }
        Ok(Self {
            message_type,
            schema_version: be_u32(header, 36),
            created_date: be_u64(header, 40),
            sequence_number: be_u64(header, 48) as i64,
            flags: be_u64(header, 56),
            message_id: Uuid::from_bytes(id),
            payload_type: PayloadType::from_u32(be_u32(header, 112)),
            payload,
        })
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("message type of {0} bytes exceeds 32 bytes")]
    TypeTooLong(usize),
    #[error("payload exceeds 4 GiB")]
    PayloadTooLong,
}

fn be_u32(h: &[u8; HEADER_SIZE], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&h[at..at + 4]);
    u32::from_be_bytes(b)
}

fn be_u64(h: &[u8; HEADER_SIZE], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[at..at + 8]);
    u64::from_be_bytes(b)
}

/// Milliseconds since the Unix epoch, as CreatedDate wants them.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
