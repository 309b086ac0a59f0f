//! Hardening, the shell's side: what `embargo` refuses, and that it refuses
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

/// Before: no logger was installed, so every `log::warn!` (here the history's "moved aside")
/// was lost, and a history with damaged data pages opened as if healthy. After: the damage is
/// found at open and the warning names both paths on stderr.
#[test]
fn a_history_with_corrupt_pages_is_moved_aside_and_said_so() {
    use std::io::{Seek, Write};
    let t = Temp::new("corrupt");
    let state = t.0.join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let db = state.join("history.db");
    {
        let history = embargo_history::History::open(embargo_history::Config::new(&db)).unwrap();
        let recorder = history.recorder();
        for i in 0..5_000 {
            let mut e = embargo_history::Event::new(
                embargo_history::now_ms() + i,
                embargo_history::Protocol::Tcp,
                embargo_history::Verdict::Block,
            );
            e.app = Some(format!("/usr/bin/app-{}", i % 40));
            e.name = Some(format!("n{i}.example"));
            recorder.record(e);
        }
        history.flush().unwrap();
    }
    let len = std::fs::metadata(&db).unwrap().len();
    let from = (len / 4096 / 2) * 4096;
    let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.seek(std::io::SeekFrom::Start(from)).unwrap();
    f.write_all(&vec![0x5A; (len - from) as usize]).unwrap();
    drop(f);
    let out = embargo_within(
        Duration::from_secs(60),
        &["history", "--state-dir", path(&state)],
    );
    let err = stderr(&out);
    assert!(
        err.contains("warn")
            && err.contains(&format!("{} is damaged", db.display()))
            && err.contains(&format!("moved to {}.corrupt-", db.display())),
        "{err}"
    );
}

/// `-v` turns debug on, and `RUST_LOG` replaces the flags.
#[test]
fn verbosity_flags_and_rust_log_reach_the_logger() {
    let t = Temp::new("verbose");
    let state = t.0.join("state");
    let state = path(&state);
    // The state directory's 0755 -> 0700 note is a warning: shown by default.
    std::fs::create_dir(state).unwrap();
    std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = embargo_within(
        Duration::from_secs(30),
        &["default", "full", "--state-dir", state],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("now 0700"), "{}", stderr(&out));
    let quiet = Command::new(env!("CARGO_BIN_EXE_embargo"))
        .args(["default", "telemetry", "--state-dir", state])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(quiet.status.success());
    assert!(!stderr(&quiet).contains("warn"), "{}", stderr(&quiet));
}

/// Before: `--list /dev/zero` spun at 100 % CPU forever (a line reader over an endless line)
/// and `--asn-db /dev/zero` read until memory ran out (2.1 GB RSS in 7 s, then failed at the
/// test's 4 GB ulimit). After: refused at once, naming the file and the limit.
#[test]
fn devices_as_lists_or_databases_are_refused_quickly() {
    let t = Temp::new("devzero");
    let state = t.0.join("state");
    let state = path(&state);
    let limit = Duration::from_secs(20);
    for (args, what) in [
        (
            vec![
                "check",
                "--list",
                "/dev/zero",
                "--format",
                "domains",
                "a.example",
            ],
            "the list is a device",
        ),
        (
            vec!["check", "--list", "/dev/zero", "a.example"],
            "the list is a device",
        ),
        (
            vec!["check", "--asn-db", "/dev/zero", "a.example"],
            "the ASN database is a device",
        ),
        (
            vec!["check", "--country-db", "/dev/zero", "a.example"],
            "the country database is a device",
        ),
        (
            vec!["check", "--rules", "/dev/zero", "a.example"],
            "the rule file is a device",
        ),
        (
            vec![
                "lists",
                "compile",
                "--format",
                "domains",
                "/dev/zero",
                "-o",
                "/dev/null",
            ],
            "the list is a device",
        ),
        (
            vec![
                "lists",
                "add",
                "/dev/zero",
                "--format",
                "domains",
                "--state-dir",
                state,
            ],
            "the list is a device",
        ),
        (
            vec![
                "run",
                "--netns",
                "embt-hzero",
                "--list",
                "/dev/zero",
                "--state-dir",
                state,
                "--dns-upstream",
                "192.0.2.53",
            ],
            "the list is a device",
        ),
        (
            vec![
                "run",
                "--netns",
                "embt-hzero",
                "--asn-db",
                "/dev/zero",
                "--state-dir",
                state,
                "--dns-upstream",
                "192.0.2.53",
            ],
            "the IP database is a device",
        ),
    ] {
        let out = embargo_within(limit, &args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded: {err}");
        assert!(
            err.contains(&format!("/dev/zero: {what}")) && err.contains("256 MiB"),
            "{args:?}: {err}"
        );
    }
}

/// A FIFO would block the open (no writer) or stream forever: refused like a device.
#[test]
fn a_fifo_as_a_list_is_refused_without_blocking() {
    let t = Temp::new("fifo");
    let fifo = t.0.join("list.txt");
    let c = std::ffi::CString::new(path(&fifo)).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let out = embargo_within(
        Duration::from_secs(20),
        &[
            "check",
            "--list",
            path(&fifo),
            "--format",
            "domains",
            "a.example",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the list is a FIFO"),
        "{}",
        stderr(&out)
    );
}

/// Before: the lists a run loads from the state directory were parsed with their report
/// thrown away, so a list that had become a binary file (0 rules) loaded silently and the run
/// protected nothing from it; `--list` reports had no warning however bad. After: every
/// report is logged (info), a list mostly of errors gets a warning, and an unusable one (all
/// errors, or binary) makes `run` refuse to start, naming it.
#[test]
fn run_reports_lists_warns_on_mostly_errors_and_refuses_a_binary_one() {
    let t = Temp::new("lists");
    let state = t.0.join("state");
    let state = path(&state);
    let list = t.0.join("mine.txt");
    std::fs::write(&list, "a.example\nb.example\n").unwrap();
    let out = embargo_within(
        Duration::from_secs(30),
        &[
            "lists",
            "add",
            path(&list),
            "--format",
            "domains",
            "--state-dir",
            state,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The file is replaced by a binary one after it was added.
    let mut binary = b"\x7fELF\x02\x01\x01\x00".to_vec();
    binary.extend((0..20_000u32).map(|i| (i * 7 % 251) as u8));
    std::fs::write(&list, &binary).unwrap();
    let mostly = t.0.join("mostly.txt");
    std::fs::write(&mostly, "good.example\nbad name\nanother bad\nthird bad\n").unwrap();
    let out = embargo_within(
        Duration::from_secs(60),
        &[
            "run",
            "--netns",
            "embt-hlist",
            "--dns-upstream",
            "192.0.2.53",
            "--state-dir",
            state,
            "--list",
            path(&mostly),
        ],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "started with a binary list: {err}");
    assert!(
        err.contains("info: mostly.txt: 1 accepted, 3 error(s)")
            && err.contains("mostly.txt:2: bad name"),
        "no load report: {err}"
    );
    assert!(
        err.contains("warn: list mostly.txt: 3 of 4 lines are errors (75 %)"),
        "no warning: {err}"
    );
    assert!(
        err.contains(&format!("list mine.txt ({})", list.display()))
            && err.contains("a binary file")
            && err.contains("Refusing to start"),
        "{err}"
    );
}

/// Before: a state directory another user owns (and so could fill) was used as it was, by
/// root. After: refused, naming the owner.
#[test]
fn run_refuses_a_state_dir_owned_by_another_user() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED run_refuses_a_state_dir_owned_by_another_user: needs root (chown)");
        return;
    }
    let t = Temp::new("foreign");
    let state = t.0.join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
    let out = embargo_within(
        Duration::from_secs(60),
        &[
            "run",
            "--netns",
            "embt-hforeign",
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
            && err.contains("owned by uid 65534"),
        "{err}"
    );
}
