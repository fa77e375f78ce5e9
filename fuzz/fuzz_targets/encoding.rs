//! The chunk aggregate decoder, `encoding::decode` and `decode_shard`, and the encoding's canonical form: see `txp_core::fuzzing::check_encoding`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = txp_core::fuzzing::check_encoding(data) {
        panic!("{violation}");
    }
});
