//! Replays the committed `devicetree_props` fuzz corpus (`fuzz/corpus/devicetree_props/`)
//! through the harness the fuzzer runs: hostile firmware properties and odd machines.

#[path = "../../fuzz/harness/devicetree_props.rs"]
mod devicetree_props;
#[path = "../../fuzz/harness/input.rs"]
mod input;

#[test]
fn replay_devicetree_props_corpus() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/devicetree_props");
    let mut total = devicetree_props::Reached::default();
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("committed corpus directory") {
        let r = devicetree_props::run(&std::fs::read(e.unwrap().path()).unwrap());
        total.built += r.built;
        total.refused += r.refused;
        total.extra_props_built += r.extra_props_built;
        total.phbs_built += r.phbs_built;
        n += 1;
    }
    assert!(n > 0, "the corpus in {} is empty", dir.display());
    assert!(
        total.extra_props_built > 0 && total.phbs_built > 0 && total.refused > 0,
        "the corpus never built a tree with extra properties or PHBs, or never refused: {total:?}"
    );
    println!("replayed {n} devicetree_props inputs: {total:?}");
}
