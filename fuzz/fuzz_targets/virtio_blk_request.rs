#![no_main]
//! Fuzz target: one virtio-blk request from an arbitrary descriptor chain.

use libfuzzer_sys::fuzz_target;

#[path = "../harness/input.rs"]
mod input;
#[path = "../harness/scratch.rs"]
mod scratch;
#[path = "../harness/ram.rs"]
#[allow(dead_code)]
mod ram;
#[path = "../harness/virtio_blk_request.rs"]
mod virtio_blk_request;

fuzz_target!(|data: &[u8]| {
    virtio_blk_request::run(data);
});
