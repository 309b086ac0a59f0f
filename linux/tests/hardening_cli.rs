//! Issue 16 ("Hardening"), the shell's side: what `embargo` refuses, and that it refuses
//! quickly and says why. Each test runs the real binary.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A fresh directory under the system's temporary directory, removed on drop.
struct Temp(PathBuf);

impl Temp {
    fn new(tag: &str) -> Temp {
        let dir =
            std::env::temp_dir().join(format!("embargo-hardening-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Temp(dir)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `embargo ARGS` with a deadline: a command that does not finish in `limit` is killed
/// and the test fails (the bugs here were endless loops and unbounded reads).
fn embargo_within(limit: Duration, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_embargo"))
        .args(args)
        .env_remove("EMBARGO_STATE_DIR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run embargo");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "embargo {args:?} still running after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Before: `embargo run` took a 0777 state directory and replayed the undo log found in it as
/// root. After: refused before anything in it is read, naming the directory, its mode and
/// owner, and the fix.
#[test]
fn run_refuses_a_world_writable_state_dir() {
    let t = Temp::new("state777");
    let state = t.0.join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let marker = t.0.join("marker");
    std::fs::write(
        state.join("run-netns-embt-h777.json"),
        serde_json::json!({"pid": 999_999_999u32, "steps": [
            {"undo": "restore_file", "path": marker, "previous": "planted"}
        ]})
        .to_string(),
    )
    .unwrap();
    let out = embargo_within(
        Duration::from_secs(60),
        &[
            "run",
            "--netns",
            "embt-h777",
            "--dns-upstream",
            "192.0.2.53",
            "--state-dir",
            path(&state),
        ],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "started: {err}");
    assert!(
        err.contains(&format!("refusing state directory {}", state.display()))
            && err.contains("0777")
            && err.contains("chmod 0700"),
        "{err}"
    );
    assert!(!marker.exists(), "the planted undo log was replayed");
}
