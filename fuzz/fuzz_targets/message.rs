//! The queue message decoder, `ChunkMessage::decode`, and `decode(encode(m)) == m`: see `txp_core::fuzzing::check_message`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = txp_core::fuzzing::check_message(data) {
        panic!("{violation}");
    }
});
