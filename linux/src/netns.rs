//! Network-namespace mode: the TUN device is created in the host namespace (so Embargo's own
//! sockets stay there and bypass the tunnel with no marks or rules), then moved into the
//! protected namespace, where it becomes the only route (v4 and v6) and the namespace's DNS.

use std::fs;

use anyhow::{Context, Result};

use crate::routes::{etc_netns, ip, ip_output, netns_dir, Changes, Undo};

/// Addresses given to the TUN device inside the namespace (source addresses of the apps).
/// Chosen from ranges unlikely to collide with test or home networks.
pub const TUN_V4: &str = "10.233.0.1/24";
/// IPv6 unique-local address of the TUN device inside the namespace.
pub const TUN_V6: &str = "fd65:6d62::1/64";
/// The resolver address written into the namespace's resolv.conf: on the TUN subnet, so
/// queries enter the tunnel, where the engine answers every port-53 query whatever its address.
pub const DNS_V4: &str = "10.233.0.53";

/// Whether the namespace `name` exists.
pub fn exists(name: &str) -> Result<bool> {
    let list = ip_output(&["netns", "list"])?;
    Ok(list
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name)))
}

/// Creates `name` if missing (recording its deletion), moves `tun` into it and makes it the
/// namespace's default route for IPv4 and IPv6, and points its DNS into the tunnel.
pub fn protect(name: &str, tun: &str, mtu: u32, changes: &mut Changes) -> Result<()> {
    if !exists(name)? {
        changes.push(Undo::Ip {
            args: vec!["netns".into(), "del".into(), name.into()],
        })?;
        ip(&["netns", "add", name])?;
    }
    // The device disappears with our descriptor (it is not persistent); this step only covers
    // a device someone made persistent meanwhile.
    changes.push(Undo::Ip {
        args: vec![
            "-n".into(),
            name.into(),
            "link".into(),
            "del".into(),
            tun.into(),
        ],
    })?;
    ip(&["link", "set", tun, "netns", name])?;
    let mtu = mtu.to_string();
    ip(&["-n", name, "link", "set", "lo", "up"])?;
    ip(&["-n", name, "addr", "replace", TUN_V4, "dev", tun])?;
    ip(&[
        "-n", name, "-6", "addr", "replace", TUN_V6, "dev", tun, "nodad",
    ])?;
    // No router lives behind the tunnel: without this the kernel sends router solicitations
    // (three, 4 s apart) into it after link-up. Best effort: a missing sysctl changes nothing.
    let _ = std::process::Command::new("ip")
        .args(["netns", "exec", name, "sysctl", "-qw"])
        .arg(format!("net.ipv6.conf.{tun}.router_solicitations=0"))
        .status();
    ip(&["-n", name, "link", "set", tun, "mtu", &mtu, "up"])?;
    // Replace any default the namespace had: nothing may leave beside the tunnel.
    ip(&["-n", name, "route", "replace", "default", "dev", tun])?;
    ip(&["-n", name, "-6", "route", "replace", "default", "dev", tun])?;
    write_resolv_conf(name, changes)
}

fn write_resolv_conf(name: &str, changes: &mut Changes) -> Result<()> {
    let dir = netns_dir(name);
    if !dir.exists() {
        if !etc_netns().exists() {
            changes.push(Undo::RemoveDir { path: etc_netns() })?;
        }
        changes.push(Undo::RemoveDir { path: dir.clone() })?;
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let path = dir.join("resolv.conf");
    let previous = fs::read_to_string(&path).ok();
    changes.push(Undo::RestoreFile {
        path: path.clone(),
        previous,
    })?;
    fs::write(
        &path,
        format!("# written by embargo run: DNS goes through the tunnel\nnameserver {DNS_V4}\n"),
    )
    .with_context(|| format!("write {}", path.display()))
}
