//! Replays the committed corpus of the `virtio_blk_device` fuzz target
//! (`fuzz/corpus/virtio_blk_device/`) through its harness: virtio-blk as a device, with its
//! I/O thread. A test binary of its own, with one test, because the harness counts the
//! process's threads (tests running beside it would start and end threads of their own).

#[path = "../../fuzz/harness/input.rs"]
mod input;
#[path = "../../fuzz/harness/ram.rs"]
#[allow(dead_code)]
mod ram;
#[path = "../../fuzz/harness/scratch.rs"]
mod scratch;
#[path = "../../fuzz/harness/virtio_blk_device.rs"]
mod virtio_blk_device;

#[test]
fn replay_virtio_blk_device_corpus() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/virtio_blk_device");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("committed corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    assert!(
        !inputs.is_empty(),
        "the corpus in {} is empty",
        dir.display()
    );
    let mut t = virtio_blk_device::Reached::default();
    for p in &inputs {
        let r = virtio_blk_device::run(&std::fs::read(p).unwrap());
        t.started += r.started;
        t.used += r.used;
        t.guest_writes += r.guest_writes;
        t.disk_writes += r.disk_writes;
        t.indirect += r.indirect;
        t.pauses += r.pauses;
        t.resets += r.resets;
        t.racing_steps += r.racing_steps;
        t.forgeable += r.forgeable;
    }
    assert!(
        t.started > 0
            && t.used > 0
            && t.guest_writes > 0
            && t.disk_writes > 0
            && t.indirect > 0
            && t.pauses > 0
            && t.resets > 0
            && t.racing_steps > 0,
        "the corpus misses a device path: {t:?}"
    );
    println!("replayed {} virtio_blk_device inputs: {t:?}", inputs.len());
}
