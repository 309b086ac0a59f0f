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
    // Straight to stderr, not `eprintln!`: libtest would hide it, as all output of a passing test.
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {} is missing (test data from ../shared/data; see README)",
        path.display()
    );
    None
}
