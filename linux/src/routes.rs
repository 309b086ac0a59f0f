//! Routing changes made by `embargo run`, and the undo log that reverts them on exit, on a
//! signal, or at the next start after a crash.
//!
//! Every change is recorded (as the command that reverts it) in a JSON state file *before* it
//! is made, so a killed instance leaves behind exactly what the next start must undo. Undo
//! steps tolerate "already gone".

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Runs `ip ARGS...`, failing with its stderr.
pub fn ip(args: &[&str]) -> Result<()> {
    ip_output(args).map(drop)
}

/// Runs `ip ARGS...` and returns its stdout.
pub fn ip_output(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("run `ip` (is iproute2 installed?)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One step that reverts one change.
///
/// The undo log is data, not commands: a step read back from the log is replayed only if it is
/// one that a run of the same scope ([`Scope`]) records ([`Undo::check`]): the namespace's
/// deletion, its TUN device, its `/etc/netns/NAME` files; the whole-machine rules at Embargo's
/// own priorities and table, the `rp_filter` values it loosened. Anything else is refused with
/// a message and not executed, whoever wrote the file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "undo", rename_all = "snake_case")]
pub enum Undo {
    /// Run `ip ARGS...` (e.g. `rule del ...`, `netns del NAME`, `link del tunX`).
    Ip { args: Vec<String> },
    /// Put a file back as it was (`None`: it did not exist).
    RestoreFile {
        path: PathBuf,
        previous: Option<String>,
    },
    /// Remove a directory we created, if it is empty.
    RemoveDir { path: PathBuf },
}

/// What a run changes, and so what its undo log may hold: one network namespace, or the whole
/// machine's policy routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `run --netns NAME`.
    Netns(String),
    /// `run` without `--netns`.
    Machine,
}

/// Largest previous content of a file restored from the log (a resolv.conf, an rp_filter
/// value); a real one is a few hundred bytes.
const MAX_RESTORED: usize = 64 * 1024;

/// Whether `name` is a network namespace name Embargo accepts: 1 to 64 characters of
/// `[A-Za-z0-9_.-]`, not starting with `.` or `-` (so never `.`, `..` or an option).
pub fn valid_netns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether `name` is a network interface name (the kernel's limit: 15 bytes), with no `/`,
/// not `.`/`..`, not an option.
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Undo {
    /// Whether a run of `scope` records this step (see the type's documentation); the reason
    /// when not.
    pub fn check(&self, scope: &Scope) -> std::result::Result<(), String> {
        let ok = match (self, scope) {
            (Undo::Ip { args }, Scope::Netns(ns)) => {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                match a.as_slice() {
                    ["netns", "del", name] => name == ns,
                    ["-n", name, "link", "del", dev] => name == ns && valid_ifname(dev),
                    _ => false,
                }
            }
            (Undo::Ip { args }, Scope::Machine) => {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                machine_ip_step(&a)
            }
            (Undo::RestoreFile { path, previous }, Scope::Netns(ns)) => {
                *path == netns_dir(ns).join("resolv.conf")
                    && previous.as_ref().is_none_or(|p| p.len() <= MAX_RESTORED)
            }
            (Undo::RestoreFile { path, previous }, Scope::Machine) => {
                let value_ok = previous
                    .as_deref()
                    .is_some_and(|p| matches!(p.trim(), "0" | "1" | "2"));
                value_ok && is_rp_filter_path(path)
            }
            (Undo::RemoveDir { path }, Scope::Netns(ns)) => {
                *path == netns_dir(ns) || *path == etc_netns()
            }
            (Undo::RemoveDir { .. }, Scope::Machine) => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("not a step a run of {scope:?} records: {self:?}"))
        }
    }

    /// Reverts the change; failures (already reverted) are reported, not fatal.
    fn run(&self) {
        let result = match self {
            Undo::Ip { args } => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                ip(&args)
            }
            Undo::RestoreFile { path, previous } => match previous {
                Some(text) => {
                    fs::write(path, text).with_context(|| format!("restore {}", path.display()))
                }
                None => match fs::remove_file(path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(e).with_context(|| format!("remove {}", path.display()))
                    }
                    _ => Ok(()),
                },
            },
            Undo::RemoveDir { path } => {
                let _ = fs::remove_dir(path);
                Ok(())
            }
        };
        if let Err(e) = result {
            log::debug!("undo {self:?}: {e:#}");
        }
    }
}

/// `/etc/netns`: where `ip netns exec` finds per-namespace files (a directory of the test
/// process's own in unit tests, which run unprivileged).
pub fn etc_netns() -> PathBuf {
    #[cfg(not(test))]
    return PathBuf::from("/etc/netns");
    #[cfg(test)]
    return std::env::temp_dir().join(format!("embargo-test-etc-netns-{}", std::process::id()));
}

/// `/etc/netns/NAME`: where `ip netns exec` finds the namespace's resolv.conf.
pub fn netns_dir(name: &str) -> PathBuf {
    etc_netns().join(name)
}

/// `/proc/sys/net/ipv4/conf/IFACE/rp_filter` for a valid interface name (or all/default).
fn is_rp_filter_path(path: &Path) -> bool {
    let Ok(rest) = path.strip_prefix("/proc/sys/net/ipv4/conf") else {
        return false;
    };
    let parts: Vec<_> = rest.iter().filter_map(|p| p.to_str()).collect();
    rest.iter().count() == 2
        && matches!(parts.as_slice(), [iface, "rp_filter"] if valid_ifname(iface))
}

/// The `ip` steps of whole-machine mode ([`route_machine`]): the tunnel table's flush and the
/// deletion of each rule it adds, at its own priority, selector and table.
fn machine_ip_step(a: &[&str]) -> bool {
    let table = TUNNEL_TABLE;
    match a {
        [fam, "route", "flush", "table", t] => matches!(*fam, "-4" | "-6") && *t == table,
        [fam, "rule", "del", "pref", pref, rest @ ..] if matches!(*fam, "-4" | "-6") => {
            let pref: u32 = match pref.parse() {
                Ok(p) => p,
                Err(_) => return false,
            };
            match (pref, rest) {
                (PREF_MARKED, ["fwmark", mark, "table", "main"]) => mark
                    .strip_prefix("0x")
                    .is_some_and(|hex| u32::from_str_radix(hex, 16).is_ok_and(|m| m != 0)),
                (PREF_DNS, ["ipproto", proto, "dport", "53", "table", t]) => {
                    matches!(*proto, "udp" | "tcp") && *t == table
                }
                (PREF_SUPPRESS, ["suppress_prefixlength", "0", "table", "main"]) => true,
                (PREF_TUNNEL, ["table", t]) => *t == table,
                _ => false,
            }
        }
        _ => false,
    }
}

/// The undo log, mirrored to a state file after every change, and the lock that says a live
/// process owns it.
#[derive(Debug)]
pub struct Changes {
    path: PathBuf,
    scope: Scope,
    steps: Vec<Undo>,
    /// `PATH.lock`, `flock`ed for the life of the process: the kernel drops the lock when the
    /// process dies (even by SIGKILL, before it is reaped), so a dead instance never holds it.
    _lock: fs::File,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    pid: u32,
    steps: Vec<Undo>,
}

/// Takes the exclusive lock of `path` (created owner-only), without waiting.
fn lock(path: &Path) -> Result<fs::File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("open lock file {}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let holder = fs::read_to_string(path).unwrap_or_default();
            bail!(
                "another embargo (pid {}) is running with this state: it holds the lock {}",
                holder.trim(),
                path.display()
            );
        }
        return Err(err).with_context(|| format!("lock {}", path.display()));
    }
    file.set_len(0)?;
    (&file).write_all(std::process::id().to_string().as_bytes())?;
    Ok(file)
}

impl Changes {
    /// Takes the lock of the log at `path` (refused while a live instance holds it), then, if
    /// a previous instance left a log there (it was killed), reverts its changes, reported on
    /// stderr: only the steps a run of `scope` records ([`Undo::check`]); any other is named
    /// and not executed.
    pub fn recover_and_start(path: &Path, scope: Scope) -> Result<Changes> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        let lock = lock(&path.with_extension("lock"))?;
        if let Ok(text) = fs::read_to_string(path) {
            match serde_json::from_str::<StateFile>(&text) {
                Ok(old) => {
                    if !old.steps.is_empty() {
                        say!(
                            "embargo: reverting {} change(s) left by a previous run (pid {}) from {}",
                            old.steps.len(),
                            old.pid,
                            path.display()
                        );
                    }
                    for step in old.steps.iter().rev() {
                        match step.check(&scope) {
                            Ok(()) => step.run(),
                            Err(why) => say!(
                                "embargo: refused to replay a step of {}: {why}",
                                path.display()
                            ),
                        }
                    }
                }
                Err(e) => say!(
                    "embargo: ignoring unreadable state file {}: {e}",
                    path.display()
                ),
            }
        }
        let changes = Changes {
            path: path.to_owned(),
            scope,
            steps: Vec::new(),
            _lock: lock,
        };
        changes.save()?;
        Ok(changes)
    }

    /// Records how to revert a change that is about to be made. A step the next start would
    /// refuse to replay is an error here, before the change is made.
    pub fn push(&mut self, undo: Undo) -> Result<()> {
        undo.check(&self.scope).map_err(anyhow::Error::msg)?;
        self.steps.push(undo);
        self.save()
    }

    fn save(&self) -> Result<()> {
        let state = StateFile {
            pid: std::process::id(),
            steps: self.steps.clone(),
        };
        let text = serde_json::to_string_pretty(&state)?;
        embargo_app::store::write_atomic(&self.path, text.as_bytes())
    }

    /// Reverts everything, newest first, and removes the state file.
    pub fn revert_all(&mut self) {
        while let Some(step) = self.steps.pop() {
            step.run();
            let _ = self.save();
        }
        let _ = fs::remove_file(&self.path);
    }
}

/// Routing table that holds the default route into the tunnel in whole-machine mode.
pub const TUNNEL_TABLE: &str = "51871";

/// `ip rule` priorities used in whole-machine mode (below `main`'s 32766, above the defaults).
const PREF_MARKED: u32 = 5209;
const PREF_DNS: u32 = 5210;
const PREF_SUPPRESS: u32 = 5211;
const PREF_TUNNEL: u32 = 5212;

/// Whole-machine routing, wg-quick style, without touching the main table:
/// - our own (marked) sockets use `main` as it was (the original default route);
/// - port-53 traffic goes to the tunnel even to a LAN resolver;
/// - `main` is consulted for everything but its default route (LAN and local routes keep working);
/// - everything else goes to table 51871: `default dev TUN` (v4 and v6: no v6 leak).
///
/// (A single `not fwmark M ipproto udp dport 53` rule would not do: `not` negates the whole
/// selector, so it would also catch marked non-DNS packets.)
pub fn route_machine(tun: &str, fwmark: u32, changes: &mut Changes) -> Result<()> {
    let mark = format!("{fwmark:#x}");
    let rule = |fam: &str, pref: u32, selector: &[&str], table: &str| -> Vec<String> {
        let mut r = vec![
            fam.to_string(),
            "rule".into(),
            "add".into(),
            "pref".into(),
            pref.to_string(),
        ];
        r.extend(selector.iter().map(|s| s.to_string()));
        r.extend(["table".to_string(), table.to_string()]);
        r
    };
    for fam in ["-4", "-6"] {
        changes.push(Undo::Ip {
            args: vec![
                fam.into(),
                "route".into(),
                "flush".into(),
                "table".into(),
                TUNNEL_TABLE.into(),
            ],
        })?;
        ip(&[
            fam,
            "route",
            "replace",
            "default",
            "dev",
            tun,
            "table",
            TUNNEL_TABLE,
        ])?;
        add_rule(rule(fam, PREF_MARKED, &["fwmark", &mark], "main"), changes)?;
        for proto in ["udp", "tcp"] {
            add_rule(
                rule(
                    fam,
                    PREF_DNS,
                    &["ipproto", proto, "dport", "53"],
                    TUNNEL_TABLE,
                ),
                changes,
            )?;
        }
        add_rule(
            rule(fam, PREF_SUPPRESS, &["suppress_prefixlength", "0"], "main"),
            changes,
        )?;
        add_rule(rule(fam, PREF_TUNNEL, &[], TUNNEL_TABLE), changes)?;
    }
    loosen_rp_filter(changes)
}

/// Strict reverse-path filtering (rp_filter=1) drops the replies to our own sockets: their
/// source is reachable, for an unmarked lookup, only through the tunnel, not the interface they
/// arrive on. Loose mode (2) keeps the spoofing check ("reachable at all") and lets them in.
/// The previous values are restored on exit.
fn loosen_rp_filter(changes: &mut Changes) -> Result<()> {
    let Ok(dir) = fs::read_dir("/proc/sys/net/ipv4/conf") else {
        return Ok(());
    };
    for entry in dir.flatten() {
        let path = entry.path().join("rp_filter");
        let Ok(previous) = fs::read_to_string(&path) else {
            continue;
        };
        if previous.trim() == "1" {
            changes.push(Undo::RestoreFile {
                path: path.clone(),
                previous: Some(previous),
            })?;
            fs::write(&path, "2").with_context(|| format!("write {}", path.display()))?;
        }
    }
    Ok(())
}

fn add_rule(add: Vec<String>, changes: &mut Changes) -> Result<()> {
    let mut del = add.clone();
    if let Some(verb) = del.iter_mut().find(|a| *a == "add") {
        *verb = "del".into();
    }
    changes.push(Undo::Ip { args: del })?;
    let args: Vec<&str> = add.iter().map(String::as_str).collect();
    ip(&args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("embargo-routes-test-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Rewrites a log as if another process (now dead) had written it.
    fn as_dead_writer(path: &Path) {
        let text = fs::read_to_string(path).unwrap();
        let rewritten = text.replacen(
            &format!("\"pid\": {}", std::process::id()),
            "\"pid\": 999999999",
            1,
        );
        fs::write(path, rewritten).unwrap();
    }

    /// `recover_and_start` once the lock is free. Another test of this process spawning `ip`
    /// forks a child that holds a copy of every descriptor until its exec closes them (they are
    /// close-on-exec), so a lock released a moment ago can still be held for a few ms.
    fn start_when_free(path: &Path, scope: Scope) -> Changes {
        for _ in 0..200 {
            match Changes::recover_and_start(path, scope.clone()) {
                Ok(c) => return c,
                Err(e) if format!("{e:#}").contains("another embargo") => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Err(e) => panic!("{e:#}"),
            }
        }
        panic!("the lock of {} stayed held", path.display());
    }

    #[test]
    fn state_file_round_trips_and_is_removed_after_revert() {
        let dir = temp("roundtrip");
        let path = dir.join("run.json");
        let ns = format!("embt-rt-{}", std::process::id());
        let scope = Scope::Netns(ns.clone());
        let flag = netns_dir(&ns).join("resolv.conf");
        fs::create_dir_all(flag.parent().unwrap()).unwrap();
        let mut changes = Changes::recover_and_start(&path, scope.clone()).unwrap();
        fs::write(&flag, "x").unwrap();
        changes
            .push(Undo::RestoreFile {
                path: flag.clone(),
                previous: None,
            })
            .unwrap();
        // a "crash": the log stays, the lock goes with the process; the next start reverts it
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("restore_file"));
        drop(changes);
        as_dead_writer(&path);
        let mut again = start_when_free(&path, scope);
        assert!(!flag.exists());
        again.revert_all();
        assert!(!path.exists());
        let _ = fs::remove_dir_all(netns_dir(&ns));
        let _ = fs::remove_dir_all(&dir);
    }

    /// The undo log is data, never commands: steps this version did not write are refused,
    /// so a log planted in the state directory cannot make root run an `ip` command or
    /// write a file at the next start.
    #[test]
    fn foreign_steps_in_the_log_are_refused_and_not_executed() {
        let dir = temp("foreign");
        let path = dir.join("run-netns-phone.json");
        let marker = dir.join("marker");
        let evil_ns = format!("embt-evil-{}", std::process::id());
        let planted = serde_json::json!({
            "pid": 999_999_999u32,
            "steps": [
                {"undo": "restore_file", "path": marker, "previous": "written by the log"},
                {"undo": "restore_file", "path": format!("{}/../../../{}", netns_dir("phone").display(), marker.display()), "previous": "x"},
                {"undo": "ip", "args": ["netns", "add", evil_ns]},
                {"undo": "ip", "args": ["netns", "del", "someone-elses"]},
                {"undo": "remove_dir", "path": dir.join("empty")},
            ]
        });
        fs::create_dir_all(dir.join("empty")).unwrap();
        fs::write(&path, planted.to_string()).unwrap();
        let mut changes = Changes::recover_and_start(&path, Scope::Netns("phone".into())).unwrap();
        assert!(
            !marker.exists(),
            "a file outside /etc/netns/phone was written"
        );
        assert!(
            dir.join("empty").exists(),
            "a directory outside /etc/netns was removed"
        );
        let namespaces = std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        assert!(
            !namespaces.contains(&evil_ns),
            "a foreign ip command ran: {namespaces}"
        );
        changes.revert_all();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &evil_ns])
            .output();
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_the_steps_a_run_records_pass_the_check() {
        let ns = Scope::Netns("phone".into());
        let ip = |a: &[&str]| Undo::Ip {
            args: a.iter().map(|s| s.to_string()).collect(),
        };
        let file = |p: &Path, prev: Option<&str>| Undo::RestoreFile {
            path: p.to_owned(),
            previous: prev.map(str::to_owned),
        };
        // what netns mode records
        assert!(ip(&["netns", "del", "phone"]).check(&ns).is_ok());
        assert!(ip(&["-n", "phone", "link", "del", "emb0"])
            .check(&ns)
            .is_ok());
        let resolv = netns_dir("phone").join("resolv.conf");
        assert!(file(&resolv, Some("nameserver 1.1.1.1\n"))
            .check(&ns)
            .is_ok());
        assert!(file(&resolv, None).check(&ns).is_ok());
        let dir = Undo::RemoveDir {
            path: netns_dir("phone"),
        };
        assert!(dir.check(&ns).is_ok());
        assert!(Undo::RemoveDir { path: etc_netns() }.check(&ns).is_ok());
        // what it never records
        for bad in [
            ip(&["netns", "del", "other"]),
            ip(&["netns", "exec", "phone", "sh", "-c", "id"]),
            ip(&["-n", "phone", "link", "del", "../../aaaaaaaaaaaaaa"]),
            ip(&["-batch", "/tmp/cmds"]),
            file(Path::new("/etc/passwd"), Some("root::0:0::/:/bin/sh")),
            file(&netns_dir("other").join("resolv.conf"), None),
            file(&netns_dir("phone").join("../other/resolv.conf"), None),
            Undo::RemoveDir {
                path: "/var/lib".into(),
            },
        ] {
            assert!(bad.check(&ns).is_err(), "accepted {bad:?}");
        }
        // whole-machine mode
        let m = Scope::Machine;
        for good in [
            ip(&["-4", "route", "flush", "table", TUNNEL_TABLE]),
            ip(&[
                "-6", "rule", "del", "pref", "5209", "fwmark", "0xcaa0", "table", "main",
            ]),
            ip(&[
                "-4",
                "rule",
                "del",
                "pref",
                "5210",
                "ipproto",
                "udp",
                "dport",
                "53",
                "table",
                TUNNEL_TABLE,
            ]),
            ip(&[
                "-4",
                "rule",
                "del",
                "pref",
                "5211",
                "suppress_prefixlength",
                "0",
                "table",
                "main",
            ]),
            ip(&["-6", "rule", "del", "pref", "5212", "table", TUNNEL_TABLE]),
            file(
                Path::new("/proc/sys/net/ipv4/conf/eth0/rp_filter"),
                Some("1\n"),
            ),
            file(
                Path::new("/proc/sys/net/ipv4/conf/all/rp_filter"),
                Some("1"),
            ),
        ] {
            assert!(good.check(&m).is_ok(), "refused {good:?}");
        }
        for bad in [
            ip(&["-4", "route", "flush", "table", "main"]),
            ip(&["-4", "rule", "del", "pref", "100", "table", "main"]),
            ip(&["-4", "rule", "del", "pref", "5212", "table", "main"]),
            ip(&["route", "add", "default", "via", "192.0.2.1"]),
            file(
                Path::new("/proc/sys/net/ipv4/conf/../ip_forward"),
                Some("1"),
            ),
            file(
                Path::new("/proc/sys/net/ipv4/conf/eth0/rp_filter"),
                Some("evil"),
            ),
            file(Path::new("/proc/sys/kernel/core_pattern"), Some("1")),
            ip(&["netns", "del", "phone"]),
        ] {
            assert!(bad.check(&m).is_err(), "accepted {bad:?}");
        }
    }

    /// The undo log says which namespace and rules a run changed: like every file in the
    /// state directory, it and its lock are readable by their user alone (0600).
    #[test]
    fn the_log_and_its_lock_are_owner_only() {
        let dir = temp("modes");
        let path = dir.join("run-netns-phone.json");
        let changes = Changes::recover_and_start(&path, Scope::Netns("phone".into())).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&path.with_extension("lock")), 0o600);
        drop(changes);
        let _ = fs::remove_dir_all(&dir);
    }

    /// A restart right after a SIGKILL goes ahead even while the killed process is a zombie
    /// (its comm still reads `embargo`). The lock is what says a run is alive: held, a
    /// second start is refused; released (by exit or death), the next start goes ahead.
    #[test]
    fn a_held_lock_refuses_a_second_start_and_a_released_one_does_not() {
        let dir = temp("lock");
        let path = dir.join("run-netns-phone.json");
        let first = Changes::recover_and_start(&path, Scope::Netns("phone".into())).unwrap();
        let err = Changes::recover_and_start(&path, Scope::Netns("phone".into())).unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.contains("another embargo") && err.contains(".lock"),
            "{err}"
        );
        drop(first);
        start_when_free(&path, Scope::Netns("phone".into()));
        let _ = fs::remove_dir_all(&dir);
    }
}
