//! The reliable stream over data-channel messages (spec §4–5), without I/O.
//!
//! Owns per-direction sequence numbers, the outgoing buffer of unacked
//! messages with RTT/RTO estimation and retransmission, and the incoming
//! reorder buffer with (re-)acknowledgement. Both our client and the
//! simulator's agent use it; the [`Role`] decides which message type each
//! side sends. The caller owns the socket and the clock: it feeds frames and
//! instants in and sends the frames this returns.
//!
//! Differences from the plugin, on purpose:
//! - RTT samples use the real last-send time of each message;
//! - every overdue message is retransmitted (oldest first), not only the head,
//!   so that a burst of losses does not recover at one message per tick;
//! - duplicates are re-acked (as the agent does);
//! - the outgoing buffer never evicts: its bound is enforced by the caller
//!   holding back writers (backpressure), see `DataChannel`.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::message::{EncodeError, Message, MessageType, PayloadType, flags};
use super::payloads::Acknowledge;

/// Initial retransmission timeout.
pub const INITIAL_RTO: Duration = Duration::from_millis(200);
/// Upper bound of the retransmission timeout.
pub const MAX_RTO: Duration = Duration::from_secs(1);
/// How often the caller should call [`Reliable::due_retransmissions`]
/// while [`Reliable::unacked`] is not zero (never otherwise: nothing can be
/// due).
pub const RESEND_TICK: Duration = Duration::from_millis(100);
/// Most stream-data payload bytes per message, as the real peers send.
pub const CHUNK: usize = 1024;
const INITIAL_RTT_NS: f64 = 100_000_000.0;
const CLOCK_GRANULARITY_NS: f64 = 10_000_000.0;
const ALPHA: f64 = 0.125;
const BETA: f64 = 0.25;

/// Which end of the channel we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends `input_stream_data`, receives `output_stream_data`.
    Client,
    /// Sends `output_stream_data`, receives `input_stream_data`.
    Agent,
}

impl Role {
    /// The stream-data type this role sends.
    pub fn outgoing_type(self) -> MessageType {
        match self {
            Self::Client => MessageType::InputStreamData,
            Self::Agent => MessageType::OutputStreamData,
        }
    }

    /// The stream-data type this role receives.
    pub fn incoming_type(self) -> MessageType {
        match self {
            Self::Client => MessageType::OutputStreamData,
            Self::Agent => MessageType::InputStreamData,
        }
    }
}

/// Tunables of one reliable stream.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Out-of-order messages kept before newer ones are dropped unacked.
    pub max_incoming: usize,
    /// Retransmissions of one message before the peer is declared gone.
    pub max_attempts: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_incoming: 10_000,
            max_attempts: 3_000,
        }
    }
}

/// A sent, not yet acknowledged message.
#[derive(Debug)]
struct Pending {
    seq: i64,
    frame: Bytes,
    last_sent: Instant,
    attempts: u32,
}

/// What became of a received stream-data message.
#[derive(Debug, Default)]
pub struct Received {
    /// The ack frame to send, if the message is acknowledged.
    pub ack: Option<Bytes>,
    /// Messages now deliverable in sequence order (possibly none).
    pub deliver: Vec<Message>,
}

/// A message was retransmitted too often without an ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the peer did not acknowledge message {seq} after {attempts} retransmissions")]
pub struct PeerGone {
    pub seq: i64,
    pub attempts: u32,
}

/// Sequencing, acknowledgement and retransmission state of one channel.
#[derive(Debug)]
pub struct Reliable {
    role: Role,
    limits: Limits,
    next_seq: i64,
    outgoing: VecDeque<Pending>,
    expected: i64,
    incoming: BTreeMap<i64, Message>,
    rtt_ns: f64,
    rttvar_ns: f64,
    rto: Duration,
}

impl Reliable {
    /// A fresh stream: both counters at 0.
    pub fn new(role: Role, limits: Limits) -> Self {
        Self {
            role,
            limits,
            next_seq: 0,
            outgoing: VecDeque::new(),
            expected: 0,
            incoming: BTreeMap::new(),
            rtt_ns: INITIAL_RTT_NS,
            rttvar_ns: 0.0,
            rto: INITIAL_RTO,
        }
    }

    /// Numbers, encodes and buffers one stream-data message; returns the frame
    /// to send. The message stays buffered until acked, whether or not the
    /// send succeeds.
    pub fn prepare(
        &mut self,
        payload_type: PayloadType,
        payload: Bytes,
        now: Instant,
    ) -> Result<Bytes, EncodeError> {
        let seq = self.next_seq;
        let flag = match self.role {
            Role::Agent if seq == 0 => flags::SYN,
            _ => 0,
        };
        let msg = Message::new(self.role.outgoing_type(), seq, flag, payload_type, payload);
        let frame = msg.encode()?;
        self.next_seq += 1;
        self.outgoing.push_back(Pending {
            seq,
            frame: frame.clone(),
            last_sent: now,
            attempts: 0,
        });
        Ok(frame)
    }

    /// Applies an acknowledgement. Returns true when it removed a buffered
    /// message (the caller then frees one unit of send window).
    pub fn on_ack(&mut self, ack: &Acknowledge, now: Instant) -> bool {
        let Some(pos) = self
            .outgoing
            .iter()
            .position(|p| p.seq == ack.sequence_number)
        else {
            return false;
        };
        if let Some(p) = self.outgoing.remove(pos) {
            let sample = now.saturating_duration_since(p.last_sent).as_nanos() as f64;
            self.update_rto(sample);
        }
        true
    }

    fn update_rto(&mut self, sample_ns: f64) {
        self.rttvar_ns = (1.0 - BETA) * self.rttvar_ns + BETA * (self.rtt_ns - sample_ns).abs();
        self.rtt_ns = (1.0 - ALPHA) * self.rtt_ns + ALPHA * sample_ns;
        let rto_ns = self.rtt_ns + CLOCK_GRANULARITY_NS.max(4.0 * self.rttvar_ns);
        self.rto = Duration::from_nanos(rto_ns.max(0.0) as u64).min(MAX_RTO);
    }

    /// Handles one received stream-data message of our incoming type.
    ///
    /// With `accept` false the caller is not ready for more data: a new
    /// message is dropped without an ack (the peer retransmits it later),
    /// while duplicates of delivered ones are still re-acked.
    pub fn on_stream_data(&mut self, msg: Message, accept: bool) -> Result<Received, EncodeError> {
        let seq = msg.sequence_number;
        if !accept && seq >= self.expected {
            return Ok(Received::default());
        }
        if seq == self.expected {
            let ack = Some(self.ack_frame(&msg)?);
            let mut deliver = vec![msg];
            self.expected += 1;
            while let Some(next) = self.incoming.remove(&self.expected) {
                deliver.push(next);
                self.expected += 1;
            }
            Ok(Received { ack, deliver })
        } else if seq > self.expected {
            if self.incoming.contains_key(&seq) {
                return Ok(Received {
                    ack: Some(self.ack_frame(&msg)?),
                    deliver: Vec::new(),
                });
            }
            if self.incoming.len() >= self.limits.max_incoming {
                return Ok(Received::default());
            }
            let ack = Some(self.ack_frame(&msg)?);
            self.incoming.insert(seq, msg);
            Ok(Received {
                ack,
                deliver: Vec::new(),
            })
        } else {
            // A duplicate of something already delivered: re-ack it so the
            // peer stops retransmitting.
            Ok(Received {
                ack: Some(self.ack_frame(&msg)?),
                deliver: Vec::new(),
            })
        }
    }

    fn ack_frame(&self, msg: &Message) -> Result<Bytes, EncodeError> {
        let ack = Acknowledge::for_message(
            msg.message_type.as_str(),
            msg.message_id,
            msg.sequence_number,
        );
        // Serialising a struct of strings, an i64 and a bool cannot fail.
        let payload = serde_json::to_vec(&ack).unwrap_or_default();
        Message::new(
            MessageType::Acknowledge,
            0,
            flags::CONTROL,
            PayloadType::Unset,
            Bytes::from(payload),
        )
        .encode()
    }

    /// Frames of every message unacked for longer than the RTO, oldest first,
    /// marked as sent now. Fails once a message exceeds its attempt budget.
    pub fn due_retransmissions(&mut self, now: Instant) -> Result<Vec<Bytes>, PeerGone> {
        let rto = self.rto;
        let mut out = Vec::new();
        for p in self.outgoing.iter_mut() {
            if now.saturating_duration_since(p.last_sent) > rto {
                p.attempts += 1;
                if p.attempts > self.limits.max_attempts {
                    return Err(PeerGone {
                        seq: p.seq,
                        attempts: self.limits.max_attempts,
                    });
                }
                p.last_sent = now;
                out.push(p.frame.clone());
            }
        }
        Ok(out)
    }

    /// Frames of every unacked message, oldest first, marked as sent now:
    /// after a reconnect, what was in flight on the old socket may be lost.
    pub fn resend_all(&mut self, now: Instant) -> Vec<Bytes> {
        self.outgoing
            .iter_mut()
            .map(|p| {
                p.last_sent = now;
                p.frame.clone()
            })
            .collect()
    }

    /// Messages sent and not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.outgoing.len()
    }

    /// Out-of-order messages held for later delivery.
    pub fn buffered_incoming(&self) -> usize {
        self.incoming.len()
    }

    /// The sequence number the next outgoing message will carry.
    pub fn next_sequence(&self) -> i64 {
        self.next_seq
    }

    /// The sequence number expected next from the peer.
    pub fn expected_sequence(&self) -> i64 {
        self.expected
    }

    /// The current retransmission timeout.
    pub fn rto(&self) -> Duration {
        self.rto
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(role: Role, seq: i64, body: &'static [u8]) -> Message {
        Message::new(
            role.outgoing_type(),
            seq,
            0,
            PayloadType::Output,
            Bytes::from_static(body),
        )
    }

    fn ack_of(frame: &Bytes) -> Acknowledge {
        let m = Message::decode(frame.clone()).expect("ack decodes");
        assert_eq!(m.message_type, MessageType::Acknowledge);
        assert_eq!(m.flags, 3);
        serde_json::from_slice(&m.payload).expect("ack json")
    }

    #[test]
    fn in_order_delivery_and_acks() {
        let mut r = Reliable::new(Role::Client, Limits::default());
        let got = r
            .on_stream_data(data(Role::Agent, 0, b"a"), true)
            .expect("ok");
        assert_eq!(got.deliver.len(), 1);
        assert_eq!(ack_of(got.ack.as_ref().expect("acked")).sequence_number, 0);
        assert_eq!(r.expected_sequence(), 1);
    }

    #[test]
    fn reorders_and_reacks_duplicates() {
        let mut r = Reliable::new(Role::Agent, Limits::default());
        let later = r
            .on_stream_data(data(Role::Client, 2, b"c"), true)
            .expect("ok");
        assert!(later.deliver.is_empty());
        assert!(later.ack.is_some());
        let mid = r
            .on_stream_data(data(Role::Client, 1, b"b"), true)
            .expect("ok");
        assert!(mid.deliver.is_empty());
        let first = r
            .on_stream_data(data(Role::Client, 0, b"a"), true)
            .expect("ok");
        let bodies: Vec<_> = first.deliver.iter().map(|m| m.payload.clone()).collect();
        assert_eq!(bodies, vec![&b"a"[..], &b"b"[..], &b"c"[..]]);
        let dup = r
            .on_stream_data(data(Role::Client, 1, b"b"), true)
            .expect("ok");
        assert!(dup.deliver.is_empty());
        assert_eq!(
            ack_of(dup.ack.as_ref().expect("re-acked")).sequence_number,
            1
        );
    }

    #[test]
    fn not_ready_drops_new_data_but_reacks_duplicates() {
        let mut r = Reliable::new(Role::Client, Limits::default());
        r.on_stream_data(data(Role::Agent, 0, b"a"), true)
            .expect("ok");
        let refused = r
            .on_stream_data(data(Role::Agent, 1, b"b"), false)
            .expect("ok");
        assert!(refused.ack.is_none() && refused.deliver.is_empty());
        assert_eq!(r.expected_sequence(), 1);
        let dup = r
            .on_stream_data(data(Role::Agent, 0, b"a"), false)
            .expect("ok");
        assert!(dup.ack.is_some());
        let later = r
            .on_stream_data(data(Role::Agent, 1, b"b"), true)
            .expect("ok");
        assert_eq!(later.deliver.len(), 1);
    }

    #[test]
    fn full_reorder_buffer_drops_without_ack() {
        let limits = Limits {
            max_incoming: 1,
            ..Limits::default()
        };
        let mut r = Reliable::new(Role::Client, limits);
        assert!(
            r.on_stream_data(data(Role::Agent, 5, b"x"), true)
                .expect("ok")
                .ack
                .is_some()
        );
        let dropped = r
            .on_stream_data(data(Role::Agent, 6, b"y"), true)
            .expect("ok");
        assert!(dropped.ack.is_none() && dropped.deliver.is_empty());
    }

    #[test]
    fn agent_sets_syn_on_first_message_only() {
        let mut r = Reliable::new(Role::Agent, Limits::default());
        let now = Instant::now();
        let f0 = r
            .prepare(PayloadType::Output, Bytes::from_static(b"a"), now)
            .expect("enc");
        let f1 = r
            .prepare(PayloadType::Output, Bytes::from_static(b"b"), now)
            .expect("enc");
        let m0 = Message::decode(f0).expect("dec");
        let m1 = Message::decode(f1).expect("dec");
        assert_eq!((m0.sequence_number, m0.flags), (0, 1));
        assert_eq!((m1.sequence_number, m1.flags), (1, 0));
        assert_eq!(m0.message_type, MessageType::OutputStreamData);
    }

    #[test]
    fn selective_ack_and_retransmission() {
        let mut r = Reliable::new(Role::Client, Limits::default());
        let t0 = Instant::now();
        for body in [&b"a"[..], b"b", b"c"] {
            r.prepare(PayloadType::Output, Bytes::from_static(body), t0)
                .expect("enc");
        }
        let ack = Acknowledge::for_message("input_stream_data", uuid::Uuid::new_v4(), 1);
        assert!(r.on_ack(&ack, t0 + Duration::from_millis(5)));
        assert!(!r.on_ack(&ack, t0), "second ack of the same seq is ignored");
        assert_eq!(r.unacked(), 2);
        assert!(
            r.due_retransmissions(t0 + Duration::from_millis(1))
                .expect("ok")
                .is_empty()
        );
        let due = r
            .due_retransmissions(t0 + MAX_RTO + Duration::from_millis(1))
            .expect("ok");
        let seqs: Vec<_> = due
            .into_iter()
            .map(|f| Message::decode(f).expect("dec").sequence_number)
            .collect();
        assert_eq!(seqs, vec![0, 2]);
    }

    #[test]
    fn rto_follows_samples_and_is_capped() {
        let mut r = Reliable::new(Role::Client, Limits::default());
        let t0 = Instant::now();
        r.prepare(PayloadType::Output, Bytes::from_static(b"a"), t0)
            .expect("enc");
        let ack = Acknowledge::for_message("input_stream_data", uuid::Uuid::new_v4(), 0);
        r.on_ack(&ack, t0 + Duration::from_millis(1));
        // RTTVAR = 0.25*|100-1| ms = 24.75 ms; RTT = 87.625 ms; RTO = RTT + 4*RTTVAR.
        let expected = Duration::from_micros(87_625 + 99_000);
        let diff = r.rto().abs_diff(expected);
        assert!(diff < Duration::from_micros(10), "rto {:?}", r.rto());
        r.prepare(PayloadType::Output, Bytes::from_static(b"b"), t0)
            .expect("enc");
        let ack = Acknowledge::for_message("input_stream_data", uuid::Uuid::new_v4(), 1);
        r.on_ack(&ack, t0 + Duration::from_secs(30));
        assert_eq!(r.rto(), MAX_RTO);
    }

    #[test]
    fn gives_up_after_max_attempts() {
        let limits = Limits {
            max_attempts: 2,
            ..Limits::default()
        };
        let mut r = Reliable::new(Role::Client, limits);
        let mut t = Instant::now();
        r.prepare(PayloadType::Output, Bytes::from_static(b"a"), t)
            .expect("enc");
        for _ in 0..2 {
            t += Duration::from_secs(2);
            assert_eq!(r.due_retransmissions(t).expect("ok").len(), 1);
        }
        t += Duration::from_secs(2);
        assert_eq!(
            r.due_retransmissions(t),
            Err(PeerGone {
                seq: 0,
                attempts: 2
            })
        );
    }
}
