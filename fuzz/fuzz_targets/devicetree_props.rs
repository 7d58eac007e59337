#![no_main]
//! Fuzz target: the device-tree builder fed hostile firmware properties and odd machines.

use libfuzzer_sys::fuzz_target;

#[path = "../harness/devicetree_props.rs"]
mod devicetree_props;
#[path = "../harness/input.rs"]
mod input;
#[path = "../harness/ram.rs"]
#[allow(dead_code)]
mod ram;

fuzz_target!(|data: &[u8]| {
    devicetree_props::run(data);
});
