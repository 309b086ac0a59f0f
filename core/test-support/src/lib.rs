//! What Embargo's tests share (as hickory's `test-support`): the engine's test harness and the
//! way to the test data beside the repository. A dev-dependency only; never published.
//!
//! The harness uses `embargo-engine`, and the engine's own integration tests and benches use the
//! harness: cargo allows that dev-dependency cycle, and those targets link the same engine
//! library as this crate. The engine's unit tests (`#[cfg(test)]` inside `src/`) would see a
//! second copy of the engine whose types differ from theirs, so they do not use this crate;
//! everything they need stays beside them. [`shared_data`] needs nothing of the engine: crates
//! that only want the test data (policy, the CLI) take this crate without its `harness`
//! feature (the policy crate could not take the harness: it would link a second copy of
//! itself into its unit tests).

use std::io::Write;
use std::path::PathBuf;

#[cfg(feature = "harness")]
mod harness;
#[cfg(feature = "harness")]
pub use harness::*;

/// `../shared/data/<rel>` (the test data beside the repository), or `None` after one SKIPPED
/// line naming the running test when the file is missing: the suite passes from a clone alone.
pub fn shared_data(rel: &str) -> Option<PathBuf> {
    // This crate sits two levels below the repository (core/test-support).
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(rel);
    if path.exists() {
        return Some(path);
    }
    // Straight to stderr, not `eprintln!`: libtest hides what a passing test prints.
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let line = format!(
        "SKIPPED {test}: {} is missing (test data from ../shared/data; see README)\n",
        path.display()
    );
    let _ = std::io::stderr().write_all(line.as_bytes()); // one write: no interleaving
    None
}
