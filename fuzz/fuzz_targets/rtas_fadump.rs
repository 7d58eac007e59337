#![no_main]
//! Fuzz target: RTAS argument blocks and the fadump registration path.

use libfuzzer_sys::fuzz_target;

#[path = "../harness.rs"]
mod harness;

fuzz_target!(|data: &[u8]| {
    harness::run(data);
});
