//! The importance parser, through `ImportanceTable::read`: see `txp_core::fuzzing::check_importance`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = txp_core::fuzzing::check_importance(data) {
        panic!("{violation}");
    }
});
