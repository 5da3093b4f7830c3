//! The test vectors of `shared/docs/ssm-data-channel.md` §12, produced by the
//! real plugin codec: each decodes field by field and re-encodes byte-exact,
//! and each JSON payload is reproduced from our typed payload structs.

use bytes::Bytes;
use uuid::Uuid;

use super::message::{DecodeError, Message, MessageType, PayloadType};
use super::payloads::*;

struct Vector {
    hex: &'static str,
    message_type: MessageType,
    seq: i64,
    flags: u64,
    id: &'static str,
    payload_type: PayloadType,
    payload_len: usize,
}

const CREATED: u64 = 1_503_434_274_948;

fn check(v: &Vector) -> Message {
    let frame = Bytes::from(hex::decode(v.hex).expect("hex"));
    let m = Message::decode(frame.clone()).expect("decodes");
    assert_eq!(m.message_type, v.message_type);
    assert_eq!(m.schema_version, 1);
    assert_eq!(m.created_date, CREATED);
    assert_eq!(m.sequence_number, v.seq);
    assert_eq!(m.flags, v.flags);
    assert_eq!(m.message_id, Uuid::parse_str(v.id).expect("uuid"));
    assert_eq!(m.payload_type, v.payload_type);
    assert_eq!(m.payload.len(), v.payload_len);
    assert_eq!(frame.len(), 120 + v.payload_len);
    assert_eq!(
        m.encode().expect("encodes"),
        frame,
        "re-encoding is byte-exact"
    );
    m
}

/// Builds the message from typed parts and checks it encodes to the vector.
fn rebuild(v: &Vector, payload: Vec<u8>) {
    let m = Message {
        message_type: v.message_type.clone(),
        schema_version: 1,
        created_date: CREATED,
        sequence_number: v.seq,
        flags: v.flags,
        message_id: Uuid::parse_str(v.id).expect("uuid"),
        payload_type: v.payload_type,
        payload: Bytes::from(payload),
    };
    assert_eq!(hex::encode(m.encode().expect("encodes")), v.hex);
}

/// V1: input_stream_data Output 'ls\r' (123 bytes)
const V1: Vector = Vector {
    hex: "00000074696e7075745f73747265616d5f64617461202020202020202020202020202020000000010000015e0baa788400000000000000000000000000000000a508b5f073f31b16dd01e56bff48483e1d887ce0f8672e4914d9000e801cd74ecd805dd9366c0bc42dc16adc0197dc2f00000001000000036c730d",
    message_type: MessageType::InputStreamData,
    seq: 0,
    flags: 0,
    id: "dd01e56b-ff48-483e-a508-b5f073f31b16",
    payload_type: PayloadType::Output,
    payload_len: 3,
};

/// V2: acknowledge (296 bytes)
const V2: Vector = Vector {
    hex: "0000007461636b6e6f776c65646765202020202020202020202020202020202020202020000000010000015e0baa78840000000000000000000000000000000387766554433221100f1e2d3c4b5a496855adb9495d424c9d9ef0dd8506df220528ecd43d18951d5162bf9846f3cc002a00000000000000b07b2241636b6e6f776c65646765644d65737361676554797065223a226f75747075745f73747265616d5f64617461222c2241636b6e6f776c65646765644d6573736167654964223a2234633362376131652d396632642d346538612d623163362d306435653766386139623263222c2241636b6e6f776c65646765644d65737361676553657175656e63654e756d626572223a302c22497353657175656e7469616c4d657373616765223a747275657d",
    message_type: MessageType::Acknowledge,
    seq: 0,
    flags: 3,
    id: "0f1e2d3c-4b5a-4968-8776-655443322110",
    payload_type: PayloadType::Unset,
    payload_len: 176,
};

/// V3: output_stream_data HandshakeRequest (agent, seq 0, SYN flag) (330 bytes)
const V3: Vector = Vector {
    hex: "000000746f75747075745f73747265616d5f646174612020202020202020202020202020000000010000015e0baa78840000000000000000000000000000000184445555555555551111111122224333b505e4eadccd280f550ac4ffd25c6bcb0f0333462e9175f1f4b719f0c07ffac700000005000000d27b224167656e7456657273696f6e223a22332e332e3938372e30222c22526571756573746564436c69656e74416374696f6e73223a5b7b22416374696f6e54797065223a2253657373696f6e54797065222c22416374696f6e506172616d6574657273223a7b2253657373696f6e54797065223a22506f7274222c2250726f70657274696573223a7b226c6f63616c506f72744e756d626572223a2230222c22706f72744e756d626572223a223232222c2274797065223a224c6f63616c506f7274466f7277617264696e67227d7d7d5d7d",
    message_type: MessageType::OutputStreamData,
    seq: 0,
    flags: 1,
    id: "11111111-2222-4333-8444-555555555555",
    payload_type: PayloadType::HandshakeRequest,
    payload_len: 210,
};

/// V4: input_stream_data HandshakeResponse (client seq 0) (267 bytes)
const V4: Vector = Vector {
    hex: "00000074696e7075745f73747265616d5f64617461202020202020202020202020202020000000010000015e0baa78840000000000000000000000000000000080b400c04fd430c86ba7b8109dad41d1035056b24ece59f84a6ba856caba412de915a64e738063c9d37bc4a755e5599700000006000000937b22436c69656e7456657273696f6e223a22312e322e3637372e30222c2250726f636573736564436c69656e74416374696f6e73223a5b7b22416374696f6e54797065223a2253657373696f6e54797065222c22416374696f6e537461747573223a312c22416374696f6e526573756c74223a6e756c6c2c224572726f72223a22227d5d2c224572726f7273223a6e756c6c7d",
    message_type: MessageType::InputStreamData,
    seq: 0,
    flags: 0,
    id: "6ba7b810-9dad-41d1-80b4-00c04fd430c8",
    payload_type: PayloadType::HandshakeResponse,
    payload_len: 147,
};

/// V5: input_stream_data Size 80x24 (seq 1) (141 bytes)
const V5: Vector = Vector {
    hex: "00000074696e7075745f73747265616d5f64617461202020202020202020202020202020000000010000015e0baa7884000000000000000100000000000000009a1b2c3d4e5f6a7b9b2f4c1a7e3d4f60d53ca1ea7dce87c11432052a8550ed2615cf715ca843c89710ed83325b691cba00000003000000157b22636f6c73223a38302c22726f7773223a32347d",
    message_type: MessageType::InputStreamData,
    seq: 1,
    flags: 0,
    id: "9b2f4c1a-7e3d-4f60-9a1b-2c3d4e5f6a7b",
    payload_type: PayloadType::Size,
    payload_len: 21,
};

/// V6: input_stream_data Flag TerminateSession (seq 5) (124 bytes)
const V6: Vector = Vector {
    hex: "00000074696e7075745f73747265616d5f64617461202020202020202020202020202020000000010000015e0baa7884000000000000000500000000000000008abcdef012345678a1b2c3d4e5f64789433ebf5bc03dffa38536673207a21281612cef5faa9bc7a4d5b9be2fdb12cf1a0000000a0000000400000002",
    message_type: MessageType::InputStreamData,
    seq: 5,
    flags: 0,
    id: "a1b2c3d4-e5f6-4789-8abc-def012345678",
    payload_type: PayloadType::Flag,
    payload_len: 4,
};

/// V7: output_stream_data HandshakeComplete (agent seq 1) (179 bytes)
const V7: Vector = Vector {
    hex: "000000746f75747075745f73747265616d5f646174612020202020202020202020202020000000010000015e0baa788400000000000000010000000000000000855566666666666622222222333344440e08c1f44e4dace0518642e1c4b01d8b8c1d9a5b520f0eea1f6e08338d8399fa000000070000003b7b2248616e647368616b6554696d65546f436f6d706c657465223a313530303030303030302c22437573746f6d65724d657373616765223a22227d",
    message_type: MessageType::OutputStreamData,
    seq: 1,
    flags: 0,
    id: "22222222-3333-4444-8555-666666666666",
    payload_type: PayloadType::HandshakeComplete,
    payload_len: 59,
};

/// V8: channel_closed (349 bytes)
const V8: Vector = Vector {
    hex: "000000746368616e6e656c5f636c6f736564202020202020202020202020202020202020000000010000015e0baa78840000000000000000000000000000000386667777777777773333333344444555124c722c5b2df6f3f52c3818a97d2a923358e52cbbdc3a89ec0d814f9601139400000000000000e57b224d6573736167654964223a2233333333333333332d343434342d343535352d383636362d373737373737373737373737222c224372656174656444617465223a22323032342d30312d30315430303a30303a30302e3030305a222c2244657374696e6174696f6e4964223a22692d3031323334353637383961626364656630222c2253657373696f6e4964223a22757365722d3061316232633364346535663637383930222c224d65737361676554797065223a226368616e6e656c5f636c6f736564222c22536368656d6156657273696f6e223a312c224f7574707574223a22227d",
    message_type: MessageType::ChannelClosed,
    seq: 0,
    flags: 3,
    id: "33333333-4444-4555-8666-777777777777",
    payload_type: PayloadType::Unset,
    payload_len: 229,
};

/// V9: input_stream_data Output carrying smux SYN sid=3 (seq 2) (128 bytes)
const V9: Vector = Vector {
    hex: "00000074696e7075745f73747265616d5f64617461202020202020202020202020202020000000010000015e0baa7884000000000000000200000000000000008888999999999999555555556666477730656bde983020b4a04d4fb8027463ad8cd15d89d4b953f961654b1d6579b9b900000001000000080100000003000000",
    message_type: MessageType::InputStreamData,
    seq: 2,
    flags: 0,
    id: "55555555-6666-4777-8888-999999999999",
    payload_type: PayloadType::Output,
    payload_len: 8,
};

#[test]
fn v1_keystrokes() {
    let m = check(&V1);
    assert_eq!(&m.payload[..], b"ls\r");
    rebuild(&V1, b"ls\r".to_vec());
}

#[test]
fn v2_acknowledge() {
    let m = check(&V2);
    let ack: Acknowledge = serde_json::from_slice(&m.payload).expect("json");
    assert_eq!(ack.message_type, "output_stream_data");
    assert_eq!(ack.message_id, "4c3b7a1e-9f2d-4e8a-b1c6-0d5e7f8a9b2c");
    assert_eq!(ack.sequence_number, 0);
    assert!(ack.is_sequential);
    let id = Uuid::parse_str("4c3b7a1e-9f2d-4e8a-b1c6-0d5e7f8a9b2c").expect("uuid");
    let ours = Acknowledge::for_message("output_stream_data", id, 0);
    rebuild(&V2, serde_json::to_vec(&ours).expect("json"));
}

#[test]
fn v3_handshake_request() {
    let m = check(&V3);
    let req: HandshakeRequest = serde_json::from_slice(&m.payload).expect("json");
    assert_eq!(req.agent_version, "3.3.987.0");
    let params: SessionTypeParameters =
        serde_json::from_str(req.requested_client_actions[0].action_parameters.get())
            .expect("params");
    assert_eq!(params.session_type, "Port");
    let props = params.properties.expect("properties");
    assert_eq!(props["portNumber"], "22");
    assert_eq!(props["type"], "LocalPortForwarding");
    let ours = HandshakeRequest {
        agent_version: "3.3.987.0".into(),
        requested_client_actions: vec![RequestedClientAction {
            action_type: "SessionType".into(),
            action_parameters: serde_json::value::to_raw_value(&SessionTypeParameters {
                session_type: "Port".into(),
                // The agent holds properties in a Go map, so they come out
                // sorted; a BTreeMap does the same whatever serde_json's
                // map ordering is.
                properties: Some(serde_json::json!(
                    [
                        ("type", "LocalPortForwarding"),
                        ("portNumber", "22"),
                        ("localPortNumber", "0")
                    ]
                    .into_iter()
                    .collect::<std::collections::BTreeMap<_, _>>()
                )),
            })
            .expect("value"),
        }],
    };
    rebuild(&V3, serde_json::to_vec(&ours).expect("json"));
}

#[test]
fn v4_handshake_response() {
    let m = check(&V4);
    let ours = HandshakeResponse {
        client_version: "1.2.677.0".into(),
        processed_client_actions: vec![ProcessedClientAction {
            action_type: "SessionType".into(),
            action_status: action_status::SUCCESS,
            action_result: None,
            error: String::new(),
        }],
        errors: None,
    };
    let parsed: HandshakeResponse = serde_json::from_slice(&m.payload).expect("json");
    assert_eq!(parsed, ours);
    rebuild(&V4, serde_json::to_vec(&ours).expect("json"));
}

#[test]
fn v5_size() {
    let m = check(&V5);
    let size: Size = serde_json::from_slice(&m.payload).expect("json");
    assert_eq!(size, Size { cols: 80, rows: 24 });
    rebuild(&V5, serde_json::to_vec(&size).expect("json"));
}

#[test]
fn v6_flag_terminate_session() {
    let m = check(&V6);
    assert_eq!(Flag::from_payload(&m.payload), Some(Flag::TerminateSession));
    rebuild(&V6, Flag::TerminateSession.to_payload().to_vec());
}

#[test]
fn v7_handshake_complete() {
    let m = check(&V7);
    let ours = HandshakeComplete {
        handshake_time_to_complete: 1_500_000_000,
        customer_message: String::new(),
    };
    let parsed: HandshakeComplete = serde_json::from_slice(&m.payload).expect("json");
    assert_eq!(parsed, ours);
    rebuild(&V7, serde_json::to_vec(&ours).expect("json"));
}

#[test]
fn v8_channel_closed() {
    let m = check(&V8);
    let ours = ChannelClosed {
        message_id: "33333333-4444-4555-8666-777777777777".into(),
        created_date: "2024-01-01T00:00:00.000Z".into(),
        destination_id: "i-0123456789abcdef0".into(),
        session_id: "user-0a1b2c3d4e5f67890".into(),
        message_type: "channel_closed".into(),
        schema_version: 1,
        output: String::new(),
    };
    let parsed: ChannelClosed = serde_json::from_slice(&m.payload).expect("json");
    assert_eq!(parsed, ours);
    rebuild(&V8, serde_json::to_vec(&ours).expect("json"));
}

#[test]
fn v9_smux_syn() {
    let m = check(&V9);
    assert_eq!(&m.payload[..], &[1, 0, 0, 0, 3, 0, 0, 0]);
    rebuild(&V9, vec![1, 0, 0, 0, 3, 0, 0, 0]);
}

#[test]
fn open_frame_matches_the_plugin_bytes() {
    let open = OpenDataChannelInput {
        message_schema_version: "1.0".into(),
        request_id: "7c9e6679-7425-40de-944b-e07fc1f90ae7".into(),
        token_value: "AAEAAexampletoken".into(),
        client_id: "6ba7b811-9dad-41d1-80b4-00c04fd430c8".into(),
        client_version: Some("1.2.677.0".into()),
    };
    assert_eq!(
        serde_json::to_string(&open).expect("json"),
        r#"{"MessageSchemaVersion":"1.0","RequestId":"7c9e6679-7425-40de-944b-e07fc1f90ae7","TokenValue":"AAEAAexampletoken","ClientId":"6ba7b811-9dad-41d1-80b4-00c04fd430c8","ClientVersion":"1.2.677.0"}"#
    );
}

fn frame(v: &Vector) -> Vec<u8> {
    hex::decode(v.hex).expect("hex")
}

#[test]
fn short_frames_are_rejected() {
    let f = frame(&V1);
    for len in [0, 1, 50, 119] {
        assert_eq!(
            Message::decode(Bytes::copy_from_slice(&f[..len])),
            Err(DecodeError::Short(len))
        );
    }
}

#[test]
fn truncated_header_length_is_rejected() {
    let mut f = frame(&V1);
    f[0..4].copy_from_slice(&500u32.to_be_bytes());
    assert!(matches!(
        Message::decode(Bytes::from(f)),
        Err(DecodeError::Truncated {
            header_length: 500,
            ..
        })
    ));
}

#[test]
fn zero_header_length_is_rejected() {
    let mut f = frame(&V1);
    f[0..4].copy_from_slice(&0u32.to_be_bytes());
    assert_eq!(
        Message::decode(Bytes::from(f)),
        Err(DecodeError::ZeroHeaderLength)
    );
}

#[test]
fn oversized_frames_are_rejected() {
    let f = vec![0u8; super::message::MAX_FRAME + 1];
    assert!(matches!(
        Message::decode(Bytes::from(f)),
        Err(DecodeError::Oversized(_))
    ));
}

#[test]
fn digest_mismatch_is_rejected_but_publication_is_not_checked() {
    let mut f = frame(&V1);
    let last = f.len() - 1;
    f[last] ^= 0xff;
    assert_eq!(
        Message::decode(Bytes::from(f)),
        Err(DecodeError::DigestMismatch)
    );
    let pause = Message {
        message_type: MessageType::PausePublication,
        schema_version: 1,
        created_date: 0,
        sequence_number: 0,
        flags: 0,
        message_id: Uuid::nil(),
        payload_type: PayloadType::Unset,
        payload: Bytes::from_static(b"x"),
    };
    let mut f = pause.encode().expect("enc").to_vec();
    f[80] ^= 0xff;
    let m = Message::decode(Bytes::from(f)).expect("publication messages skip the digest");
    assert_eq!(m.message_type, MessageType::PausePublication);
}

#[test]
fn nul_padded_type_is_accepted() {
    let mut f = frame(&V1);
    for b in &mut f[4 + 17..36] {
        *b = 0;
    }
    let m = Message::decode(Bytes::from(f)).expect("NUL padding accepted");
    assert_eq!(m.message_type, MessageType::InputStreamData);
}

#[test]
fn a_type_with_control_characters_inside_is_rejected() {
    // Found by the fuzzer: " \0\0mm" trims to "\0\0mm", which would not
    // survive a second encode/decode.
    let mut f = frame(&V1);
    f[4..36].fill(b' ');
    f[5] = 0;
    f[6] = b'm';
    assert_eq!(Message::decode(Bytes::from(f)), Err(DecodeError::BadType));
}

#[test]
fn empty_or_binary_type_is_rejected() {
    let mut f = frame(&V1);
    f[4..36].fill(b' ');
    assert_eq!(
        Message::decode(Bytes::from(f.clone())),
        Err(DecodeError::BadType)
    );
    f[4] = 0xff;
    assert_eq!(Message::decode(Bytes::from(f)), Err(DecodeError::BadType));
}

#[test]
fn exit_code_payloads() {
    assert_eq!(parse_exit_code(b"EXIT_CODE: 42"), Some(42));
    assert_eq!(parse_exit_code(format_exit_code(-1).as_bytes()), Some(-1));
    assert_eq!(parse_exit_code(b"garbage"), None);
}

mod roundtrip {
    use super::*;
    use proptest::prelude::*;

    fn any_type() -> impl Strategy<Value = MessageType> {
        prop_oneof![
            Just(MessageType::InputStreamData),
            Just(MessageType::OutputStreamData),
            Just(MessageType::Acknowledge),
            Just(MessageType::ChannelClosed),
            "[a-z_]{1,32}".prop_map(|s| MessageType::parse(&s)),
        ]
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(
            message_type in any_type(),
            schema_version in any::<u32>(),
            created_date in any::<u64>(),
            sequence_number in any::<i64>(),
            flags in any::<u64>(),
            id in any::<u128>(),
            payload_type in any::<u32>(),
            payload in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            let m = Message {
                message_type,
                schema_version,
                created_date,
                sequence_number,
                flags,
                message_id: Uuid::from_u128(id),
                payload_type: PayloadType::from_u32(payload_type),
                payload: Bytes::from(payload),
            };
            let frame = m.encode().expect("encodes");
            prop_assert_eq!(Message::decode(frame).expect("decodes"), m);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Message::decode(Bytes::from(bytes));
        }
    }
}

/// Inputs the fuzzer once crashed on: each must decode to an error or to a
/// message that re-encodes and decodes to itself.
#[test]
fn fuzz_regressions_round_trip_or_fail_cleanly() {
    let inputs: [&[u8]; 1] = [include_bytes!(
        "../../../fuzz/regressions/decode-nul-in-type.bin"
    )];
    for input in inputs {
        if let Ok(m) = Message::decode(Bytes::copy_from_slice(input)) {
            let again = Message::decode(m.encode().expect("encodes")).expect("decodes");
            assert_eq!(again, m);
        }
    }
}
