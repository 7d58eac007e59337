#![no_main]
//! Fuzz target: the HPT save stream from KVM, decoded and written into a dump's HPTE section.

use libfuzzer_sys::fuzz_target;

#[path = "../harness/htab_stream.rs"]
mod htab_stream;
#[path = "../harness/input.rs"]
mod input;
#[path = "../harness/ram.rs"]
#[allow(dead_code)]
mod ram;

fuzz_target!(|data: &[u8]| {
    htab_stream::run(data);
});
