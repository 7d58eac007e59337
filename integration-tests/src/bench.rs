//! A tiny runner for bench binaries (`harness = false`): one line per scenario or bad-input case,
//! a closing `N passed, N failed` line, and a failing exit status when anything failed.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// A case returns a one-line detail on success, or why it failed.
pub type CaseResult = Result<String, String>;

pub struct Bench {
    title: &'static str,
    passed: usize,
    failed: Vec<String>,
}

impl Bench {
    pub fn new(title: &'static str) -> Self {
        println!("== {title}");
        Self {
            title,
            passed: 0,
            failed: Vec::new(),
        }
    }

    /// Runs one case; a panic counts as a failure (and is reported), never as a crash of the run.
    pub fn case(&mut self, name: &str, f: impl FnOnce() -> CaseResult) {
        let result = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(format!("panicked: {msg}"))
        });
        match result {
            Ok(detail) => {
                self.passed += 1;
                println!("ok    {name:<58} {detail}");
            }
            Err(why) => {
                println!("FAIL  {name:<58} {why}");
                self.failed.push(name.to_string());
            }
        }
    }

    /// Prints the closing line and exits non-zero when a case failed.
    pub fn finish(self) {
        println!(
            "{}: {} passed, {} failed",
            self.title.split_whitespace().next().unwrap_or("bench"),
            self.passed,
            self.failed.len()
        );
        if !self.failed.is_empty() {
            eprintln!("{} failed: {}", self.title, self.failed.join(", "));
            std::process::exit(1);
        }
    }
}

/// `Err(msg)` unless `cond`.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}
