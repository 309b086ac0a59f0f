//! `embargo check` and `embargo lists compile`, run as a user would run them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn embargo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_embargo"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run embargo")
}

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(rel)
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
    let mut args = vec!["check", "--json"];
    args.extend(targets);
    let o = embargo(&args);
    assert!(o.status.success(), "{o:?}");
    let text = stdout(&o);
    let objects: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(objects.len(), targets.len());
    for (obj, target) in objects.iter().zip(targets) {
        assert_eq!(obj["target"], target);
    }
    assert_eq!(objects[0]["verdict"], "block");
    assert_eq!(objects[0]["reason"]["kind"], "name_rule");
    assert_eq!(objects[0]["reason"]["rule"]["list"], "builtin");
    assert_eq!(objects[0]["owner"]["value"], "ByteDance");
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
    let list = shared("blocklists/stevenblack-hosts.head3000.txt");
    let asn = shared("ipdb/asn-ipv4.head20000.csv");
    let country = shared("ipdb/asn-country-ipv4.head20000.csv");
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
    let list = shared("blocklists/native.tiktok.txt");
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
    let o = embargo(&[
        "check",
        "--json",
        "--rules",
        out.to_str().unwrap(),
        "x.log.tiktokv.com",
        "example.org",
    ]);
    assert!(o.status.success(), "{o:?}");
    let text = stdout(&o);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
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
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
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
