//! Linux only: opening a TUN device, `/dev/net/tun` plus the `TUNSETIFF` ioctl.
//!
//! The one implementation behind `embargo run` (linux/) and `linux_open_tun` (bindings/, for the
//! JVM and Python test suites and Linux desktop shells). Android and iOS get their descriptor
//! from the system and never call this.
//!
//! Why `IFF_NO_PI`: the driver and the engine exchange raw IP packets, one per `read`/`write`
//! (see [`crate::tunnel`]); without the flag the kernel prefixes every packet with a 4-byte
//! packet-information header that each side would have to add and strip.
//!
//! Why by hand (libc) rather than the `tun` crate: we need exactly one thing, a raw descriptor
//! in `IFF_TUN | IFF_NO_PI` mode for a given name (created if missing, attached if it exists, as
//! ../shared/bench/run.sh pre-creates `tun0`), which the driver then polls with mio. The crate's
//! builder adds address/route setup the shells do with `ip` (and must undo), async wrappers we
//! do not use, and a dependency tree; the ioctl is 30 lines.

use std::ffi::CStr;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `_IOW('T', 202, int)`: the ioctl that binds a /dev/net/tun descriptor to an interface.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

/// `_IOW('T', 208, unsigned int)`: which offloads the reader of an `IFF_VNET_HDR` device takes.
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
/// `IFF_VNET_HDR`: every packet carries a `virtio_net_hdr` ([`crate::virtio_net`]).
const IFF_VNET_HDR: libc::c_int = 0x4000;
/// `TUN_F_*` offloads: partial checksums, TCP segmentation over IPv4 and IPv6.
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;

/// Linux's interface name limit, terminating NUL included.
const IFNAMSIZ: usize = 16;

/// The clone device every TUN descriptor is opened from.
const CLONE_DEVICE: &CStr = c"/dev/net/tun";

#[repr(C)]
struct IfReq {
    name: [u8; IFNAMSIZ],
    flags: libc::c_short,
    /// The rest of `struct ifreq`'s union; unused by TUNSETIFF.
    _pad: [u8; 22],
}

/// Why a TUN device could not be opened. The kernel's error, if any, is the
/// [`std::error::Error::source`], not part of the message (so that `anyhow`'s `{:#}` prints it
/// once).
#[derive(Debug)]
pub enum OpenError {
    /// The name is empty, too long for the kernel, or has a '/' or a space; checked before
    /// anything touches the kernel.
    InvalidName(String),
    /// `open("/dev/net/tun")` failed (usually: not root and no CAP_NET_ADMIN, or no tun module).
    CloneDevice(io::Error),
    /// `TUNSETIFF` refused the name (usually: an existing device of that name is not a TUN, or
    /// belongs to another user).
    SetIff {
        /// The requested interface name.
        name: String,
        /// The kernel's error.
        source: io::Error,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::InvalidName(name) => write!(
                f,
                "invalid interface name {name:?} (1 to 15 characters, no '/' or spaces)"
            ),
            OpenError::CloneDevice(_) => {
                f.write_str("open /dev/net/tun (need root or CAP_NET_ADMIN)")
            }
            OpenError::SetIff { name, .. } => write!(
                f,
                "TUNSETIFF {name} (IFF_TUN|IFF_NO_PI): an existing device must be a TUN owned by us"
            ),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::InvalidName(_) => None,
            OpenError::CloneDevice(e) | OpenError::SetIff { source: e, .. } => Some(e),
        }
    }
}

/// Checks `name` the way [`open`] does, without touching the kernel: 1 to 15 bytes (the
/// kernel's limit), no '/' or space (which `ip` and sysfs paths cannot carry).
pub fn check_name(name: &str) -> Result<(), OpenError> {
    if name.is_empty() || name.len() >= IFNAMSIZ || name.contains(['/', ' ']) {
        return Err(OpenError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// Opens (creating if needed) the TUN device `name` in raw-IP mode (no packet-info header), in
/// the calling thread's network namespace. Needs root or CAP_NET_ADMIN. Returns the descriptor
/// (blocking; [`crate::tunnel::TunFd`] makes it non-blocking) and the name the kernel gave (the
/// same unless `name` had a `%d`).
pub fn open(name: &str) -> Result<(OwnedFd, String), OpenError> {
    open_flags(name, 0)
}

/// Opens the TUN device `name` as [`open`] does, with offloads when the kernel takes them:
/// `IFF_VNET_HDR` and `TUNSETOFFLOAD` (checksum, TSO4, TSO6), so that packets are framed as
/// [`crate::tunnel::Framing::VirtioNet`] and TCP comes in 64 KiB super-packets. Returns
/// whether offloads are on: `false` when the kernel refused them (the descriptor is then a
/// plain one, as [`open`] gives), with the kernel's reason.
pub fn open_offload(name: &str) -> Result<(OwnedFd, String, Result<(), io::Error>), OpenError> {
    let (fd, actual) = open_flags(name, IFF_VNET_HDR)?;
    let offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    // SAFETY: TUNSETOFFLOAD takes its argument by value; `fd` is an attached TUN descriptor.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            TUNSETOFFLOAD as _,
            offloads as libc::c_ulong,
        )
    };
    if rc == 0 {
        return Ok((fd, actual, Ok(())));
    }
    let refused = io::Error::last_os_error();
    drop(fd);
    let (fd, actual) = open_flags(&actual, 0)?;
    Ok((fd, actual, Err(refused)))
}

/// The MTU of the interface `name` in the calling thread's network namespace (`SIOCGIFMTU`).
pub fn mtu(name: &str) -> io::Result<u32> {
    check_name(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    // SAFETY: socket has no preconditions.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    #[repr(C)]
    struct IfReqMtu {
        name: [u8; IFNAMSIZ],
        mtu: libc::c_int,
        _pad: [u8; 20],
    }
    let mut req = IfReqMtu {
        name: [0; IFNAMSIZ],
        mtu: 0,
        _pad: [0; 20],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: `req` is a properly sized ifreq that outlives the call.
    let rc = unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFMTU as _,
            &mut req as *mut IfReqMtu,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(req.mtu as u32)
}

fn open_flags(name: &str, extra: libc::c_int) -> Result<(OwnedFd, String), OpenError> {
    check_name(name)?;
    // SAFETY: CLONE_DEVICE is a valid C string; open has no other preconditions.
    let raw = unsafe { libc::open(CLONE_DEVICE.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if raw < 0 {
        return Err(OpenError::CloneDevice(io::Error::last_os_error()));
    }
    // SAFETY: open returned a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = IfReq {
        name: [0; IFNAMSIZ],
        flags: (libc::IFF_TUN | libc::IFF_NO_PI | extra) as libc::c_short,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: `req` is a properly sized, initialised ifreq that outlives the call.
    let rc = unsafe { libc::ioctl(raw, TUNSETIFF as _, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(OpenError::SetIff {
            name: name.to_owned(),
            source: io::Error::last_os_error(),
        });
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
        for bad in ["", "a-name-much-too-long", "a/b", "a b"] {
            assert!(
                matches!(open(bad), Err(OpenError::InvalidName(n)) if n == bad),
                "{bad:?}"
            );
        }
        assert!(check_name("emb%d").is_ok());
        assert!(check_name("fifteen-chars-x").is_ok());
    }
}
