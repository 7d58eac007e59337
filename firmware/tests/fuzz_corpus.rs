//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) of the firmware's targets
//! through the same harnesses the fuzzer runs, so every input the fuzzer kept (and every past
//! finding, kept as `finding-*`) stays a regression test.

#[path = "../../fuzz/harness.rs"]
mod harness;
#[path = "../../fuzz/harness/input.rs"]
mod input;
#[path = "../../fuzz/harness/opal_mpipl.rs"]
mod opal_mpipl;
#[path = "../../fuzz/harness/ram.rs"]
#[allow(dead_code)]
mod ram;

/// Every input of `fuzz/corpus/<target>`, with its file name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("committed corpus {}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    assert!(!v.is_empty(), "the corpus in {} is empty", dir.display());
    v
}

#[test]
fn replay_rtas_fadump_corpus() {
    let inputs = corpus("rtas_fadump");
    let (mut registrations, mut dumps) = (0, 0);
    for (_, data) in &inputs {
        let r = harness::run(data);
        registrations += r.registrations;
        dumps += r.dumps;
    }
    // The harness must reach the deep states, or the fuzzing proves little.
    assert!(
        registrations > 0 && dumps > 0,
        "corpus never registered ({registrations}) or dumped ({dumps})"
    );
    println!(
        "replayed {} corpus inputs: {registrations} registrations, {dumps} dumps",
        inputs.len()
    );
}

#[test]
fn replay_opal_mpipl_corpus() {
    let inputs = corpus("opal_mpipl");
    let mut total = opal_mpipl::Reached::default();
    for (_, data) in &inputs {
        let r = opal_mpipl::run(data);
        total.ranges_added += r.ranges_added;
        total.preserves += r.preserves;
        total.preserves_with_kernel_ranges += r.preserves_with_kernel_ranges;
        total.queries += r.queries;
    }
    assert!(
        inputs.iter().any(|(n, _)| n.starts_with("finding-")),
        "the second-MPIPL finding's input is kept"
    );
    assert!(
        total.preserves_with_kernel_ranges > 0 && total.queries > 0,
        "the corpus never preserved registered ranges or queried a tag: {total:?}"
    );
    println!("replayed {} opal_mpipl inputs: {total:?}", inputs.len());
}
