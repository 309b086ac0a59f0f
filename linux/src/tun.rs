//! Opening a Linux TUN device: `/dev/net/tun` plus the `TUNSETIFF` ioctl.
//!
//! Done by hand (libc) rather than with the `tun` crate: we need exactly one thing, a raw
//! descriptor in `IFF_TUN | IFF_NO_PI` mode for a given name (created if missing, attached if it
//! exists, as ../shared/bench/run.sh pre-creates `tun0`), which the driver then polls with mio.
//! The crate's builder adds address/route setup we do with `ip` (and must undo), async wrappers
//! we do not use, and a dependency tree; the ioctl is 30 lines.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};

/// `_IOW('T', 202, int)`: the ioctl that binds a /dev/net/tun descriptor to an interface.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// Linux's interface name limit, terminating NUL included.
const IFNAMSIZ: usize = 16;

#[repr(C)]
struct IfReq {
    name: [u8; IFNAMSIZ],
    flags: libc::c_short,
    /// The rest of `struct ifreq`'s union; unused by TUNSETIFF.
    _pad: [u8; 22],
}

/// Opens (creating if needed) the TUN device `name` in raw-IP mode (no packet-info header).
/// Returns the descriptor and the name the kernel gave (the same unless `name` had a `%d`).
pub fn open(name: &str) -> Result<(OwnedFd, String)> {
    if name.is_empty() || name.len() >= IFNAMSIZ || name.contains('/') || name.contains(' ') {
        bail!("invalid interface name {name:?} (1 to 15 characters, no '/' or spaces)");
    }
    let path = CString::new("/dev/net/tun").context("static path")?;
    // SAFETY: path is a valid C string; open has no other preconditions.
    let raw = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error())
            .context("open /dev/net/tun (need root or CAP_NET_ADMIN)");
    }
    // SAFETY: open returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = IfReq {
        name: [0; IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: `req` is a properly sized, initialised ifreq that outlives the call.
    let rc = unsafe { libc::ioctl(raw, TUNSETIFF as _, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("TUNSETIFF {name} (IFF_TUN|IFF_NO_PI): an existing device must be a TUN owned by us"));
    }
    let end = req.name.iter().position(|&b| b == 0).unwrap_or(IFNAMSIZ);
    let actual = String::from_utf8_lossy(&req.name[..end]).into_owned();
    Ok((fd, actual))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_names_before_touching_the_kernel() {
        assert!(open("").is_err());
        assert!(open("a-name-much-too-long").is_err());
        assert!(open("a/b").is_err());
    }
}
