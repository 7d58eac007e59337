//! The powernv fadump bench: a Linux-faithful model of both kernels drives the OPAL firmware
//! through whole MPIPL crash cycles and through every bad input we know of.
//!
//! Run: `cargo test -p integration-tests --test powernv_bench` (prints one line per case).
//! Built with `harness = false` (see the crate's Cargo.toml) it prints through the bench runner;
//! under the default harness the same cases run from one `#[test]` that writes its lines
//! straight to stderr, so they show with or without `--nocapture`.

use integration_tests::bench::{Bench, CaseResult};
use integration_tests::powernv::scenarios;

/// Every case, in order: (name, thunk).
fn cases() -> Vec<(String, Box<dyn FnOnce() -> CaseResult>)> {
    let mut v: Vec<(String, Box<dyn FnOnce() -> CaseResult>)> = Vec::new();
    for (name, cycle) in scenarios::cycles() {
        v.push((
            format!("scenario: {name}"),
            Box::new(move || scenarios::run_cycle(&cycle)),
        ));
    }
    for (name, f) in scenarios::lifecycle_cases() {
        v.push((format!("scenario: {name}"), Box::new(f)));
    }
    let ram = scenarios::bad_input_ram();
    for case in scenarios::bad_inputs() {
        let ram = ram.clone();
        v.push((
            format!("bad input: {}", case.name),
            Box::new(move || scenarios::run_bad_input(&ram, &case)),
        ));
    }
    v.push((
        "bad input: CEC_REBOOT2(MPIPL) with an unreadable message".into(),
        Box::new(move || scenarios::mpipl_with_bad_message(&ram)),
    ));
    v
}

#[allow(dead_code)]
fn main() {
    let mut bench = Bench::new("powernv fadump bench (OPAL MPIPL)");
    for (name, f) in cases() {
        bench.case(&name, f);
    }
    bench.finish();
}

#[test]
fn powernv_bench() {
    use std::io::Write;
    let mut failed = Vec::new();
    let mut err = std::io::stderr().lock();
    for (name, f) in cases() {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .unwrap_or_else(|_| Err("panicked".into()));
        let line = match &r {
            Ok(detail) => format!("ok    {name:<58} {detail}"),
            Err(why) => {
                failed.push(name.clone());
                format!("FAIL  {name:<58} {why}")
            }
        };
        writeln!(err, "{line}").unwrap();
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
}
