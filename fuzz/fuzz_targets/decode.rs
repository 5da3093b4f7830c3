//! Fuzzes the data-channel frame decoder: any bytes must yield a message or
//! a typed error, never a panic; a decoded message must re-encode to a frame
//! that decodes to the same message.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ssm_datachannel::message::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::decode(Bytes::copy_from_slice(data)) {
        let frame = msg.encode().expect("a decoded message re-encodes");
        let again = Message::decode(frame).expect("a re-encoded frame decodes");
        assert_eq!(again, msg);
    }
});
