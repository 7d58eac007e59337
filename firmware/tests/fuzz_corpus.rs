//! Replays the committed fuzz corpus (`fuzz/corpus/rtas_fadump/`) through the same harness the
//! fuzzer runs, so every input the fuzzer kept (and every past finding) stays a regression test.

#[path = "../../fuzz/harness.rs"]
mod harness;

#[test]
fn replay_rtas_fadump_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/rtas_fadump");
    let (mut n, mut registrations, mut dumps) = (0, 0, 0);
    for entry in std::fs::read_dir(&dir).expect("committed corpus directory") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let r = harness::run(&data);
        registrations += r.registrations;
        dumps += r.dumps;
        n += 1;
    }
    assert!(n > 0, "the corpus in {} is empty", dir.display());
    // The harness must reach the deep states, or the fuzzing proves little.
    assert!(
        registrations > 0 && dumps > 0,
        "corpus never registered ({registrations}) or dumped ({dumps})"
    );
    println!("replayed {n} corpus inputs: {registrations} registrations, {dumps} dumps");
}
