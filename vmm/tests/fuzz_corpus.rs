//! Replays the committed fuzz corpora of the VMM's targets (`fuzz/corpus/<target>/`) through
//! the harnesses the fuzzer runs: hcall dispatch, the PHB's RTAS/MMIO/TCE surface, the HPT
//! stream from KVM and one virtio-blk request from an arbitrary descriptor chain. Every input
//! the fuzzer kept, and every finding (`finding-*`), stays a regression test.

#[path = "../../fuzz/harness/hcall_dispatch.rs"]
mod hcall_dispatch;
#[path = "../../fuzz/harness/htab_stream.rs"]
mod htab_stream;
#[path = "../../fuzz/harness/input.rs"]
mod input;
#[path = "../../fuzz/harness/phb_rtas_mmio.rs"]
mod phb_rtas_mmio;
#[path = "../../fuzz/harness/ram.rs"]
#[allow(dead_code)]
mod ram;
#[path = "../../fuzz/harness/scratch.rs"]
mod scratch;
#[path = "../../fuzz/harness/virtio_blk_request.rs"]
mod virtio_blk_request;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let v: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("committed corpus {}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(!v.is_empty(), "the corpus in {} is empty", dir.display());
    v
}

#[test]
fn replay_hcall_dispatch_corpus() {
    let mut t = hcall_dispatch::Reached::default();
    let inputs = corpus("hcall_dispatch");
    for data in &inputs {
        let r = hcall_dispatch::run(data);
        t.served += r.served;
        t.unhandled += r.unhandled;
        t.rtas_actions += r.rtas_actions;
        t.mmu_configs += r.mmu_configs;
        t.tce_ok += r.tce_ok;
        t.console_bytes += r.console_bytes;
    }
    assert!(
        t.rtas_actions > 0 && t.mmu_configs > 0 && t.tce_ok > 0 && t.console_bytes > 0,
        "the corpus misses a served path: {t:?}"
    );
    println!("replayed {} hcall_dispatch inputs: {t:?}", inputs.len());
}

#[test]
fn replay_phb_rtas_mmio_corpus() {
    let mut t = phb_rtas_mmio::Reached::default();
    let inputs = corpus("phb_rtas_mmio");
    for data in &inputs {
        let r = phb_rtas_mmio::run(data);
        t.config_calls_ok += r.config_calls_ok;
        t.ddw_created += r.ddw_created;
        t.mmio_to_device += r.mmio_to_device;
        t.tce_ok += r.tce_ok;
        t.irq_raised += r.irq_raised;
        t.resets += r.resets;
    }
    assert!(
        t.config_calls_ok > 0 && t.ddw_created > 0 && t.mmio_to_device > 0 && t.tce_ok > 0,
        "the corpus misses a PHB path: {t:?}"
    );
    println!("replayed {} phb_rtas_mmio inputs: {t:?}", inputs.len());
}

#[test]
fn replay_htab_stream_corpus() {
    let mut t = htab_stream::Reached::default();
    let inputs = corpus("htab_stream");
    for data in &inputs {
        let r = htab_stream::run(data);
        t.decoded += r.decoded;
        t.entries += r.entries;
        t.dumps_fitting += r.dumps_fitting;
        t.dumps_overflowing += r.dumps_overflowing;
    }
    assert!(
        t.entries > 0 && t.dumps_fitting > 0 && t.dumps_overflowing > 0,
        "the corpus misses a stream path: {t:?}"
    );
    println!("replayed {} htab_stream inputs: {t:?}", inputs.len());
}

#[test]
fn replay_virtio_blk_request_corpus() {
    let mut t = virtio_blk_request::Reached::default();
    let inputs = corpus("virtio_blk_request");
    for data in &inputs {
        let r = virtio_blk_request::run(data);
        t.ok += r.ok;
        t.disk_writes += r.disk_writes;
        t.reads += r.reads;
        t.long_chains += r.long_chains;
    }
    // The long chain is the O(n^2) finding: 65,535 readable descriptors took 4 s per request
    // before the parse kept a flag (the campaign's per-input timeout is what catches it).
    assert!(
        t.ok > 0 && t.disk_writes > 0 && t.reads > 0 && t.long_chains > 0,
        "the corpus misses a request path: {t:?}"
    );
    println!("replayed {} virtio_blk_request inputs: {t:?}", inputs.len());
}
