//! The management commands against stored state (no instance running): `apps`, `history`,
//! `stats`, `status`, `lists`, run as the real binary over a real SQLite history.

use std::path::Path;
use std::process::{Command, Output};

use embargo_history::{Config, Event, History, Protocol, Verdict};
use serde_json::Value;

fn embargo(state: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_embargo"))
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .env_remove("EMBARGO_STATE_DIR")
        .output()
        .expect("run embargo");
    assert!(
        out.status.success(),
        "embargo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(state: &Path, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_slice(&embargo(state, &args).stdout).expect("valid JSON")
}

fn text(state: &Path, args: &[&str]) -> String {
    String::from_utf8(embargo(state, args).stdout).unwrap()
}

/// Two apps, blocks and allows with owners and countries, written through the real recorder.
fn seed_history(state: &Path) {
    std::fs::create_dir_all(state).unwrap();
    let history = History::open(Config::new(state.join("history.db"))).unwrap();
    let recorder = history.recorder();
    let now = embargo_history::now_ms();
    let event = |app: &str, name: &str, decision, owner: Option<&str>, country: Option<&str>| {
        let mut e = Event::new(now, Protocol::Tcp, decision);
        e.app = Some(app.into());
        e.name = Some(name.into());
        e.addr = Some("203.0.113.7".parse().unwrap());
        e.port = 443;
        e.owner = owner.map(Into::into);
        e.country = country.map(Into::into);
        e.rule = Some("tiktokv.com".into());
        e.list = Some("builtin".into());
        e.line = Some(3);
        e.category = (name == "log.tiktokv.com").then(|| "Advertising".to_owned());
        recorder.record(e);
    };
    event(
        "/usr/bin/app-a",
        "log.tiktokv.com",
        Verdict::Block,
        Some("ByteDance"),
        Some("SG"),
    );
    event(
        "/usr/bin/app-a",
        "mon.tiktokv.com",
        Verdict::Block,
        Some("ByteDance"),
        Some("US"),
    );
    event(
        "/usr/bin/app-b",
        "example.org",
        Verdict::Allow,
        None,
        Some("NL"),
    );
    event(
        "/usr/bin/app-b",
        "wup.qq.com",
        Verdict::Block,
        Some("Tencent"),
        Some("CN"),
    );
    recorder.flush().unwrap();
    history.close();
}

#[test]
fn history_filters_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    seed_history(&state);

    let all = json(&state, &["history"]);
    assert_eq!(all.as_array().unwrap().len(), 4);
    let blocks = json(&state, &["history", "--decision", "block"]);
    assert_eq!(blocks.as_array().unwrap().len(), 3);
    let a = json(&state, &["history", "--app", "/usr/bin/app-a"]);
    assert_eq!(a.as_array().unwrap().len(), 2);
    let by_name = json(&state, &["history", "--name", "tiktokv.com"]);
    assert_eq!(by_name.as_array().unwrap().len(), 2);
    let cn = json(&state, &["history", "--country", "cn"]);
    assert_eq!(cn[0]["name"], "wup.qq.com");
    assert_eq!(cn[0]["owner"], "Tencent");
    let owner = json(
        &state,
        &["history", "--owner", "ByteDance", "--since", "1h"],
    );
    assert_eq!(owner.as_array().unwrap().len(), 2);
    let future = json(&state, &["history", "--since", "2999-01-01"]);
    assert_eq!(future.as_array().unwrap().len(), 0);

    let table = text(&state, &["history", "--decision", "block"]);
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("LAST SEEN") && header.contains("OWNER"),
        "{table}"
    );
    assert!(table.contains("log.tiktokv.com:443"), "{table}");
    assert!(header.contains("CATEGORY"), "{table}");
    let row = table
        .lines()
        .find(|l| l.contains("log.tiktokv.com"))
        .unwrap();
    assert!(row.contains("Advertising"), "{table}");
    let tiktok = json(&state, &["history", "--name", "log.tiktokv.com"]);
    assert_eq!(tiktok[0]["category"], "Advertising");
    let example = json(&state, &["history", "--name", "example.org"]);
    assert_eq!(example[0]["category"], serde_json::Value::Null);
    assert!(
        !table.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );

    let csv = text(&state, &["history", "--export", "csv"]);
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.lines().next().unwrap().ends_with(",category"), "{csv}");
    assert!(csv.contains(",Advertising"), "{csv}");
}

#[test]
fn stats_per_app_owner_country_and_day() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    seed_history(&state);

    let by_owner = json(&state, &["stats", "--by", "owner"]);
    let bytedance = by_owner
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["owner"] == "ByteDance")
        .expect("ByteDance row");
    assert_eq!(bytedance["blocked"], 2);
    let by_app = json(&state, &["stats"]);
    assert_eq!(by_app.as_array().unwrap().len(), 2);
    let by_country_day = json(&state, &["stats", "--by", "country,day"]);
    assert!(by_country_day
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["country"] == "CN" && r["date"].is_string()));
    assert!(text(&state, &["stats", "--by", "owner"]).contains("ByteDance"));
}

#[test]
fn apps_block_allow_pause_persist_without_an_instance() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    seed_history(&state);

    let out = text(&state, &["apps", "allow", "/usr/bin/app-a"]);
    assert!(out.contains("no instance runs"), "{out}");
    embargo(&state, &["apps", "pause", "/usr/bin/app-b", "--for", "10m"]);
    let apps = json(&state, &["apps"]);
    let find = |app: &str| {
        apps.as_array()
            .unwrap()
            .iter()
            .find(|a| a["app"] == app)
            .cloned()
            .unwrap_or_else(|| panic!("{app} missing: {apps}"))
    };
    let a = find("/usr/bin/app-a");
    assert_eq!(a["blocking"], false);
    assert_eq!(a["blocked"], 2, "counts come from the history");
    let b = find("/usr/bin/app-b");
    assert_eq!(b["blocking"], false);
    assert!(b["paused_until_ms"].as_i64().unwrap() > embargo_history::now_ms());
    // the stored settings are AppRules JSON, readable by the policy
    let rules: embargo_policy::AppRules =
        serde_json::from_slice(&std::fs::read(state.join("apps.json")).unwrap()).unwrap();
    assert!(!rules.blocking_enabled(Some("/usr/bin/app-a")));

    embargo(&state, &["apps", "block", "/usr/bin/app-b"]);
    let apps = json(&state, &["apps"]);
    let b = apps
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app"] == "/usr/bin/app-b")
        .unwrap();
    assert_eq!(b["blocking"], true);
    assert!(b["paused_until_ms"].is_null(), "block ends a pause");

    let table = text(&state, &["apps"]);
    assert!(table.starts_with("APP"), "{table}");
    assert!(table.contains("off"), "{table}");
}

#[test]
fn status_and_history_before_anything_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("never-used");
    let status = json(&state, &["status"]);
    assert_eq!(status["running"], false);
    assert!(status["history_bytes"].is_null());
    assert_eq!(json(&state, &["history"]), serde_json::json!([]));
    assert!(text(&state, &["history"]).contains("no history yet"));
    assert_eq!(json(&state, &["stats"]), serde_json::json!([]));
    assert!(
        !state.exists(),
        "looking must not create the state directory"
    );
}

#[test]
fn lists_add_show_remove_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let list = dir.path().join("mine.txt");
    std::fs::write(&list, "0.0.0.0 ads.example\n0.0.0.0 pixel.example\n").unwrap();
    let added = text(
        &state,
        &["lists", "add", list.to_str().unwrap(), "--format", "hosts"],
    );
    assert!(added.contains("2 rules"), "{added}");
    let shown = json(&state, &["lists", "show"]);
    assert_eq!(shown[0]["name"], "mine.txt");
    assert_eq!(shown[0]["counts"]["accepted"], 2);
    assert!(text(&state, &["lists", "show"]).contains("mine.txt"));
    embargo(&state, &["lists", "remove", "mine.txt"]);
    assert_eq!(json(&state, &["lists", "show"]), serde_json::json!([]));
}
