//! The layers, checked: no crate depends on one above it (from `cargo metadata`), the history
//! is a leaf, and no file outside `core/app` reads or writes the state directory (a source
//! scan). ARCHITECTURE.md draws the same picture.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Each crate's layer: a crate may depend only on crates of lower layers.
const LAYERS: &[(&str, u8)] = &[
    ("embargo-types", 0),
    ("embargo-policy", 1),
    ("embargo-history", 1),
    ("embargo-engine", 2),
    ("embargo-driver", 3),
    ("embargo-app", 4),
    ("embargo-linux", 5),
    ("embargo-ffi", 5),
    ("embargo-tests", 6),
];

/// Crates that must depend on no other Embargo crate but the shared vocabulary.
const LEAVES: &[&str] = &["embargo-history", "embargo-policy"];

/// The one crate every layer may use, leaves included: the shared enums.
const VOCABULARY: &str = "embargo-types";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Workspace packages and their normal and build dependencies on other workspace packages
/// (dev-dependencies are for tests and may reach anywhere).
fn workspace_graph() -> BTreeMap<String, Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let names: Vec<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].as_str() != Some("dev"))
                .filter_map(|d| d["name"].as_str())
                .filter(|d| names.iter().any(|n| n == d))
                .map(str::to_owned)
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

/// The layer of a workspace crate; a test-support crate sits on top (only dev-dependencies
/// may point at it, and those are not checked).
fn layer(name: &str) -> u8 {
    if let Some((_, l)) = LAYERS.iter().find(|(n, _)| *n == name) {
        return *l;
    }
    assert!(
        name.contains("test"),
        "crate {name} has no layer: add it to LAYERS in core/app/tests/layers.rs and to \
         ARCHITECTURE.md"
    );
    u8::MAX
}

#[test]
fn no_crate_depends_on_one_above_it_and_history_is_a_leaf() {
    let graph = workspace_graph();
    assert!(graph.contains_key("embargo-app"), "{graph:?}");
    let mut wrong = Vec::new();
    for (name, deps) in &graph {
        for dep in deps {
            if layer(dep) >= layer(name) {
                wrong.push(format!(
                    "{name} (layer {}) depends on {dep} (layer {})",
                    layer(name),
                    layer(dep)
                ));
            }
            if LEAVES.contains(&name.as_str()) && dep != VOCABULARY {
                wrong.push(format!("{name} is a leaf but depends on {dep}"));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

/// What only the application layer may name: the state directory's files and the one atomic
/// writer.
const STATE_DIR_WORDS: &[&str] = &[
    "settings.json",
    "apps.json",
    "pauses.json",
    "lists.json",
    "rules.json",
    "history.db",
    "rules.compiled",
    "control.sock",
    "run-netns-",
    "run-machine",
    "fn write_atomic",
    "fn check_private",
];

/// The `.rs` files of `dir`, leaving out integration tests, benches and fuzz targets (which
/// look at a state directory from outside, as a person would).
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "tests" | "benches" | "fuzz" | "target") {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_core_app_touches_the_state_directory() {
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in ["core", "linux", "bindings", "tests"] {
        sources(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} source files", files.len());
    let app = root.join("core/app");
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&app)) {
        let text = std::fs::read_to_string(file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.trim_start();
            // Unit tests at the end of a file build their own directories.
            if code.starts_with("#[cfg(test)]")
                && text
                    .lines()
                    .nth(i + 1)
                    .is_some_and(|l| l.trim_start().starts_with("mod tests"))
            {
                break;
            }
            if code.starts_with("//") {
                continue;
            }
            for word in STATE_DIR_WORDS {
                if code.contains(word) {
                    found.push(format!("{}:{}: {word}", file.display(), i + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "only core/app (embargo_app::store) may name the state directory's files; use \
         Store's paths instead:\n{}",
        found.join("\n")
    );
}
