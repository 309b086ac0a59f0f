//! The test data beside the repository (`../shared/data`), used by the unit tests (`#[path]`
//! from `src/parse/tests.rs`) and the integration tests of this crate.

use std::io::Write;
use std::path::PathBuf;

/// `../shared/data/<rel>`, or `None` after one SKIPPED line naming the running test when the
/// file is missing: the suite passes from a clone alone.
pub fn shared_data(rel: &str) -> Option<PathBuf> {
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
