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

impl Undo {
    /// Reverts the change; failures (already reverted) are reported, not fatal.
    pub fn run(&self) {
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

/// The undo log, mirrored to a state file after every change.
#[derive(Debug)]
pub struct Changes {
    path: PathBuf,
    steps: Vec<Undo>,
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    pid: u32,
    steps: Vec<Undo>,
}

impl Changes {
    /// Starts an empty log stored at `path`. If a previous instance left a log there (it was
    /// killed), its changes are reverted first, and reported on stderr.
    pub fn recover_and_start(path: &Path) -> Result<Changes> {
        if let Ok(text) = fs::read_to_string(path) {
            match serde_json::from_str::<StateFile>(&text) {
                Ok(old) => {
                    if old.pid != std::process::id()
                        && Path::new(&format!("/proc/{}", old.pid)).exists()
                        && is_embargo(old.pid)
                    {
                        bail!(
                            "another embargo (pid {}) is running with state file {}",
                            old.pid,
                            path.display()
                        );
                    }
                    if !old.steps.is_empty() {
                        eprintln!(
                            "embargo: reverting {} change(s) left by a previous run (pid {}) from {}",
                            old.steps.len(),
                            old.pid,
                            path.display()
                        );
                    }
                    for step in old.steps.iter().rev() {
                        step.run();
                    }
                }
                Err(e) => eprintln!(
                    "embargo: ignoring unreadable state file {}: {e}",
                    path.display()
                ),
            }
        }
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        let changes = Changes {
            path: path.to_owned(),
            steps: Vec::new(),
        };
        changes.save()?;
        Ok(changes)
    }

    /// Records how to revert a change that is about to be made.
    pub fn push(&mut self, undo: Undo) -> Result<()> {
        self.steps.push(undo);
        self.save()
    }

    fn save(&self) -> Result<()> {
        let state = StateFile {
            pid: std::process::id(),
            steps: self.steps.clone(),
        };
        let tmp = self.path.with_extension("tmp");
        let mut f = fs::File::create(&tmp).with_context(|| format!("write {}", tmp.display()))?;
        f.write_all(serde_json::to_string_pretty(&state)?.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &self.path).with_context(|| format!("write {}", self.path.display()))?;
        Ok(())
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

fn is_embargo(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim() == "embargo")
        .unwrap_or(false)
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

    #[test]
    fn state_file_round_trips_and_is_removed_after_revert() {
        let dir = std::env::temp_dir().join(format!("embargo-routes-test-{}", std::process::id()));
        let path = dir.join("run.json");
        let flag = dir.join("flag");
        let mut changes = Changes::recover_and_start(&path).unwrap();
        fs::write(&flag, "x").unwrap();
        changes
            .push(Undo::RestoreFile {
                path: flag.clone(),
                previous: None,
            })
            .unwrap();
        // a "crash": the next start finds the log and reverts it
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("restore_file"));
        std::mem::forget(changes);
        // pretend the writer was another, dead process
        let rewritten = text.replacen(
            &format!("\"pid\": {}", std::process::id()),
            "\"pid\": 999999999",
            1,
        );
        fs::write(&path, rewritten).unwrap();
        let mut again = Changes::recover_and_start(&path).unwrap();
        assert!(!flag.exists());
        again.revert_all();
        assert!(!path.exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
