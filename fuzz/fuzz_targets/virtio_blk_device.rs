#![no_main]
//! Fuzz target: virtio-blk as a device (rings, indirect tables, notifications, resets and
//! pauses, a ring that changes while the I/O thread reads it).

use libfuzzer_sys::fuzz_target;

#[path = "../harness/input.rs"]
mod input;
#[path = "../harness/scratch.rs"]
mod scratch;
#[path = "../harness/ram.rs"]
#[allow(dead_code)]
mod ram;
#[path = "../harness/virtio_blk_device.rs"]
mod virtio_blk_device;

fuzz_target!(|data: &[u8]| {
    virtio_blk_device::run(data);
});
