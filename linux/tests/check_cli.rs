//! `embargo check` and `embargo lists compile`, run as a user would run them.

use std::path::Path;
use std::process::{Command, Output};

use embargo_test_support::shared_data;

/// `embargo ARGS` with a state directory of its own that does not exist (no stored lists or
/// settings: the machine's /var/lib/embargo must not change what these tests see).
fn embargo(args: &[&str]) -> Output {
    let state = std::env::temp_dir().join(format!("embargo-check-cli-none-{}", std::process::id()));
    embargo_in(&state, args)
}

fn embargo_in(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_embargo"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("EMBARGO_STATE_DIR", state)
        .output()
        .expect("run embargo")
}

/// `check --json` output: one JSON object per line.
fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// 1.12.0.0-1.12.33.255 is announced by AS45090 (Shenzhen Tencent) in ip-location-db.
const AS45090_ADDR: &str = "1.12.0.1";

#[test]
fn builtin_blocks_tiktok_and_as45090_and_allows_example_org() {
    let o = embargo(&[
        "check",
        "--embargo",
        "full",
        "log.tiktokv.com",
        "mon.tiktokv.com",
        AS45090_ADDR,
        "example.org",
    ]);
    assert!(o.status.success(), "{o:?}");
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[0].starts_with("TARGET"));
    for line in &lines[1..3] {
        assert!(line.contains(" block "), "{line}");
        assert!(line.contains("ByteDance"), "{line}");
    }
    assert!(lines[3].contains(" block "), "{}", lines[3]);
    assert!(lines[3].contains("Tencent"), "{}", lines[3]);
    assert!(lines[3].contains("AS45090"), "{}", lines[3]);
    assert!(lines[3].contains("CN"), "{}", lines[3]);
    assert!(lines[4].contains(" allow "), "{}", lines[4]);
}

#[test]
fn json_is_one_object_per_target() {
    let targets = [
        "log.tiktokv.com",
        AS45090_ADDR,
        "example.org",
        "2400:3200::1",
    ];
    let mut args = vec!["check", "--json", "--embargo", "full"];
    args.extend(targets);
    let o = embargo(&args);
    assert!(o.status.success(), "{o:?}");
    let text = stdout(&o);
    let objects = json_lines(&text);
    assert_eq!(objects.len(), targets.len());
    for (obj, target) in objects.iter().zip(targets) {
        assert_eq!(obj["target"], target);
    }
    assert_eq!(objects[0]["verdict"], "block");
    assert_eq!(objects[0]["reason"]["kind"], "name_rule");
    assert_eq!(objects[0]["reason"]["rule"]["list"], "builtin");
    assert_eq!(objects[0]["owner"]["value"], "ByteDance");
    assert_eq!(objects[0]["intent"], "embargo");
    assert_eq!(objects[0]["certainty"], "certain");
    assert_eq!(objects[1]["verdict"], "block");
    assert_eq!(objects[1]["owner"]["asn"], 45090);
    assert_eq!(objects[1]["country"]["value"], "CN");
    assert_eq!(objects[1]["country"]["source"]["kind"], "database");
    assert_eq!(objects[1]["certainty"], "inferred");
    assert_eq!(objects[2]["verdict"], "allow");
    assert_eq!(objects[2]["reason"]["kind"], "no_match");
    assert_eq!(objects[3]["owner"]["asn"], 37963);
}

#[test]
fn lists_and_ip_databases_from_files() {
    let Some(list) = shared_data("blocklists/stevenblack-hosts.head3000.txt") else {
        return;
    };
    let Some(asn) = shared_data("ipdb/asn-ipv4.head20000.csv") else {
        return;
    };
    let Some(country) = shared_data("ipdb/asn-country-ipv4.head20000.csv") else {
        return;
    };
    let o = embargo(&[
        "check",
        "--json",
        "--list",
        list.to_str().unwrap(),
        "--asn-db",
        asn.to_str().unwrap(),
        "--country-db",
        country.to_str().unwrap(),
        "1.0.0.1",
        "example.org",
    ]);
    assert!(o.status.success(), "{o:?}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("stevenblack-hosts.head3000.txt: "),
        "{stderr}"
    );
    assert!(stderr.contains("accepted"), "{stderr}");
    let text = stdout(&o);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["owner"]["asn"], 13335);
    assert_eq!(
        first["owner"]["source"]["database"],
        "asn-ipv4.head20000.csv"
    );
    assert_eq!(first["country"]["value"], "AU");
}

#[test]
fn compile_then_check_with_rules() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiktok.embargo");
    let Some(list) = shared_data("blocklists/native.tiktok.txt") else {
        return;
    };
    let o = embargo(&[
        "lists",
        "compile",
        list.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{o:?}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("wrote "), "{stderr}");
    // The compiled file alone (with the default, its embargo rule for the name decides first).
    let o = embargo(&[
        "check",
        "--json",
        "--no-default",
        "--rules",
        out.to_str().unwrap(),
        "x.log.tiktokv.com",
        "example.org",
    ]);
    assert!(o.status.success(), "{o:?}");
    let text = stdout(&o);
    let lines = json_lines(&text);
    assert_eq!(lines[0]["verdict"], "block", "{text}");
    assert_eq!(lines[0]["reason"]["rule"]["list"], "native.tiktok.txt");
    assert_eq!(lines[1]["verdict"], "allow");
}

#[test]
fn compile_then_check_with_label_patterns() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("patterns.rules");
    std::fs::write(
        &list,
        "log*.tracker-example.net\n\
         @@=mon-*.tracker-example.net\n\
         *-normal*.tracker-example.net\n\
         mon-*.tracker-example.net\n",
    )
    .unwrap();
    let out = dir.path().join("patterns.embargo");
    let o = embargo(&[
        "lists",
        "compile",
        list.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{o:?}");
    let o = embargo(&[
        "check",
        "--json",
        "--rules",
        out.to_str().unwrap(),
        "LOG15.tracker-example.net.",
        "a.log15.tracker-example.net",
        "api16-normal-c.tracker-example.net",
        "mon-va.tracker-example.net",
        "x.mon-va.tracker-example.net",
        "www.tracker-example.net",
    ]);
    assert!(o.status.success(), "{o:?}");
    let text = stdout(&o);
    let lines = json_lines(&text);
    let got: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["verdict"].as_str().unwrap(),
                l["reason"]["rule"]["rule"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("block", "log*.tracker-example.net"),
            ("block", "log*.tracker-example.net"),
            ("block", "*-normal*.tracker-example.net"),
            ("allow", "@@=mon-*.tracker-example.net"),
            ("block", "mon-*.tracker-example.net"),
            ("allow", ""),
        ],
        "{text}"
    );
    assert_eq!(lines[0]["reason"]["rule"]["list"], "patterns.rules");
    assert_eq!(lines[0]["reason"]["rule"]["line"], 1);
}

#[test]
fn errors_exit_non_zero_with_a_message() {
    let o = embargo(&["check", "--list", "/nonexistent/list.txt", "example.org"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/list.txt"));

    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.embargo");
    std::fs::write(&corrupt, b"EMBARGO\x1a garbage garbage garbage garbage").unwrap();
    let o = embargo(&["check", "--rules", corrupt.to_str().unwrap(), "example.org"]);
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("corrupt.embargo"), "{stderr}");

    let o = embargo(&[
        "check",
        "--format",
        "nonsense",
        "--list",
        "x",
        "example.org",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown format"));

    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "||ok.example^\n||bad name with spaces^\n").unwrap();
    let o = embargo(&[
        "check",
        "--format",
        "adblock",
        "--list",
        bad.to_str().unwrap(),
        "ok.example",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    if o.status.success() {
        // The parser may count this line as skipped rather than an error; either way it says so.
        assert!(stderr.contains("bad.txt"), "{stderr}");
    } else {
        assert!(stderr.contains("bad.txt:2"), "{stderr}");
    }
    assert!(stdout(&o).contains("block"));
}

const TIKTOK: &str = "com.zhiliaoapp.musically";
const TIKTOK_ASIA: &str = "com.ss.android.ugc.trill";
/// ByteDance's AS396986 announces 71.18.0.0/16 (located in the US).
const BYTEDANCE_ADDR: &str = "71.18.0.1";

fn verdicts(o: &Output) -> Vec<(String, String, Option<String>)> {
    assert!(o.status.success(), "{o:?}");
    stdout(o)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("each line is JSON");
            (
                v["verdict"].as_str().unwrap().to_owned(),
                v["reason"]["kind"].as_str().unwrap().to_owned(),
                v["intent"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// Embargo mode end to end: TikTok's own telemetry is blocked for TikTok in `telemetry`
/// mode (its content is not), and everything ByteDance owns in `full` mode.
#[test]
fn embargo_blocks_tiktoks_own_telemetry_for_tiktok() {
    for app in [TIKTOK, TIKTOK_ASIA] {
        let targets = ["log.tiktokv.com", "mssdk-va.tiktokv.com", BYTEDANCE_ADDR];
        let mut args = vec!["check", "--json", "--app", app];
        args.extend(targets);
        let v = verdicts(&embargo(&args));
        assert_eq!(
            v[0],
            ("block".into(), "name_rule".into(), Some("embargo".into())),
            "{app}"
        );
        assert_eq!(
            v[1],
            ("block".into(), "name_rule".into(), Some("embargo".into())),
            "{app}"
        );
        assert_eq!(
            v[2].0, "allow",
            "{app}: content servers stay open in telemetry mode"
        );

        args.insert(2, "--embargo");
        args.insert(3, "full");
        let v = verdicts(&embargo(&args));
        for (target, verdict) in targets.iter().zip(&v) {
            assert_eq!(verdict.0, "block", "{app} {target}: {verdict:?}");
            assert_eq!(verdict.2.as_deref(), Some("embargo"), "{app} {target}");
        }
    }
}

#[test]
fn explain_marks_the_step_that_decided() {
    let o = embargo(&["check", "--explain", "--app", TIKTOK, "log.tiktokv.com"]);
    assert!(o.status.success(), "{o:?}");
    let text = stdout(&o);
    assert!(text.contains("=> 4. embargo rules"), "{text}");
    assert!(text.contains("5. first party"), "{text}");
    let o = embargo(&["check", "--explain", "--json", "example.org"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["step"], 7);
}

/// `--list` adds to the built-in default (it used to replace it, turning TikTok protection
/// off); `--no-default` leaves the default out.
#[test]
fn lists_add_to_the_default_unless_no_default() {
    let dir = std::env::temp_dir().join(format!("embargo-compose-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("extra.txt");
    std::fs::write(&list, "0.0.0.0 extra.example\n").unwrap();
    let list = list.to_str().unwrap();
    let v = verdicts(&embargo(&[
        "check",
        "--json",
        "--list",
        list,
        "log.tiktokv.com",
        "extra.example",
    ]));
    assert_eq!(v[0].0, "block", "the default still applies");
    assert_eq!(
        v[1],
        ("block".into(), "name_rule".into(), Some("tracker".into()))
    );
    let v = verdicts(&embargo(&[
        "check",
        "--json",
        "--no-default",
        "--list",
        list,
        "log.tiktokv.com",
        "extra.example",
    ]));
    assert_eq!(v[0].0, "allow");
    assert_eq!(v[1].0, "block");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Without --list/--rules, check decides as the instance of the state directory would: its
/// lists, its per-app overrides and its default level.
#[test]
fn check_decides_with_the_state_directory() {
    let dir = std::env::temp_dir().join(format!("embargo-check-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state");
    let list = dir.join("mine.txt");
    std::fs::write(&list, "0.0.0.0 mine.example\n").unwrap();
    let ok = |args: &[&str]| {
        let o = embargo_in(&state, args);
        assert!(o.status.success(), "{args:?}: {o:?}");
    };
    let check = |args: &[&str]| {
        let mut all = vec!["check", "--json"];
        all.extend(args);
        verdicts(&embargo_in(&state, &all))
    };
    assert_eq!(check(&["mine.example"])[0].0, "allow");
    ok(&["lists", "add", list.to_str().unwrap()]);
    assert_eq!(check(&["mine.example"])[0].0, "block");

    // A per-app override beats the embargo, for that app alone.
    ok(&["apps", "allow-target", TIKTOK, "log.tiktokv.com"]);
    let v = check(&["--app", TIKTOK, "log.tiktokv.com"]);
    assert_eq!(
        (v[0].0.as_str(), v[0].1.as_str()),
        ("allow", "app_override")
    );
    assert_eq!(
        check(&["--app", TIKTOK_ASIA, "log.tiktokv.com"])[0].0,
        "block"
    );
    ok(&["apps", "block-target", "com.example", "owner: ByteDance"]);
    let v = check(&["--app", "com.example", BYTEDANCE_ADDR]);
    assert_eq!(
        (v[0].0.as_str(), v[0].1.as_str()),
        ("block", "app_override")
    );
    ok(&["apps", "unset-target", TIKTOK, "log.tiktokv.com"]);
    assert_eq!(check(&["--app", TIKTOK, "log.tiktokv.com"])[0].0, "block");
    let o = embargo_in(&state, &["apps", "unset-target", TIKTOK, "log.tiktokv.com"]);
    assert!(
        !o.status.success(),
        "removing a missing override is an error"
    );

    // The stored level, and --embargo over it.
    assert_eq!(check(&[BYTEDANCE_ADDR])[0].0, "allow");
    ok(&["default", "full"]);
    assert_eq!(check(&[BYTEDANCE_ADDR])[0].0, "block");
    assert_eq!(
        check(&["--embargo", "telemetry", BYTEDANCE_ADDR])[0].0,
        "allow"
    );
    ok(&["default", "off"]);
    assert_eq!(check(&["log.tiktokv.com"])[0].0, "allow");
    assert_eq!(check(&["mine.example"])[0].0, "block");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A wrong `--format` that reads no rule from a list with rules in it is an error naming the
/// file and the format, in every command that loads lists; a list of only comments is not.
#[test]
fn wrong_format_accepting_nothing_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // A list of only comments is no error.
    let comments = dir.path().join("empty.txt");
    std::fs::write(&comments, "# nothing yet\n\n   # still nothing\n").unwrap();
    let o = embargo(&[
        "check",
        "--list",
        comments.to_str().unwrap(),
        "--format",
        "hosts",
        "example.org",
    ]);
    assert!(o.status.success(), "{o:?}");

    let Some(hosts) = shared_data("blocklists/stevenblack-hosts.head3000.txt") else {
        return;
    };
    let hosts = hosts.to_str().unwrap();
    let refused = |o: &Output| {
        assert!(!o.status.success(), "{o:?}");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains("stevenblack-hosts.head3000.txt"),
            "{stderr}"
        );
        assert!(stderr.contains("ddg-app"), "{stderr}");
        assert!(stderr.contains("no rule accepted"), "{stderr}");
    };
    refused(&embargo(&[
        "check",
        "--list",
        hosts,
        "--format",
        "ddg-app",
        "example.org",
    ]));
    // Read as dnsmasq configuration, every hosts line is skipped without an error: that
    // used to decide with no rule and exit 0.
    let o = embargo(&[
        "check",
        "--list",
        hosts,
        "--format",
        "dnsmasq",
        "example.org",
    ]);
    assert!(!o.status.success(), "{o:?}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("stevenblack-hosts.head3000.txt: no rule accepted when read as dnsmasq"),
        "{stderr}"
    );
    let out = dir.path().join("out.embargo");
    refused(&embargo(&[
        "lists",
        "compile",
        "--format",
        "ddg-app",
        hosts,
        "-o",
        out.to_str().unwrap(),
    ]));
    assert!(!out.exists());
    let state = dir.path().join("state");
    refused(&embargo(&[
        "lists",
        "add",
        hosts,
        "--format",
        "ddg-app",
        "--state-dir",
        state.to_str().unwrap(),
    ]));
    // The right format still works.
    let o = embargo(&["check", "--list", hosts, "--format", "hosts", "example.org"]);
    assert!(o.status.success(), "{o:?}");
}

/// The category Disconnect's services.json gives the deciding rule is shown, in the table and
/// in `--json`.
#[test]
fn check_shows_the_category_of_a_disconnect_rule() {
    let dir = tempfile::tempdir().unwrap();
    let services = dir.path().join("services.json");
    std::fs::write(
        &services,
        r#"{
  "license": "",
  "categories": {
    "Advertising": [
      {"AdNetwork.net": {"http://www.adnetwork.net/": ["adnetwork.net"]}}
    ],
    "Analytics": [
      {"ItIsATracker": {"https://itisatracker.com/": ["itisatracker.com"]}}
    ]
  }
}"#,
    )
    .unwrap();
    let list = services.to_str().unwrap();
    let o = embargo(&[
        "check",
        "--json",
        "--list",
        list,
        "ads.adnetwork.net",
        "itisatracker.com",
        "example.org",
    ]);
    assert!(o.status.success(), "{o:?}");
    let text = stdout(&o);
    let lines = json_lines(&text);
    assert_eq!(lines[0]["verdict"], "block", "{text}");
    assert_eq!(lines[0]["category"], "Advertising", "{text}");
    assert_eq!(lines[0]["owner"]["value"], "AdNetwork.net", "{text}");
    assert_eq!(lines[1]["category"], "Analytics", "{text}");
    assert_eq!(lines[2]["category"], serde_json::Value::Null, "{text}");

    let o = embargo(&["check", "--list", list, "ads.adnetwork.net"]);
    assert!(o.status.success(), "{o:?}");
    let text = stdout(&o);
    assert!(text.lines().next().unwrap().contains("CATEGORY"), "{text}");
    assert!(
        text.lines().nth(1).unwrap().contains("Advertising"),
        "{text}"
    );

    // The category survives the compiled file.
    let compiled = dir.path().join("services.embargo");
    let o = embargo(&["lists", "compile", list, "-o", compiled.to_str().unwrap()]);
    assert!(o.status.success(), "{o:?}");
    let o = embargo(&[
        "check",
        "--json",
        "--rules",
        compiled.to_str().unwrap(),
        "ads.adnetwork.net",
    ]);
    assert!(o.status.success(), "{o:?}");
    let line: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(line["category"], "Advertising", "{line}");
}
