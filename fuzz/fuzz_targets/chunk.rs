//! The chunk parser, through `ChunkAggregator::add_part` (what a consumer calls): see `txp_core::fuzzing::check_chunk`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = txp_core::fuzzing::check_chunk(data) {
        panic!("{violation}");
    }
});
