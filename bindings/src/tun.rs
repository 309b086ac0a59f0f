//! Linux only: opening a TUN device, optionally inside a network namespace, for the JVM and
//! Python test suites and for Linux desktop shells. Android and iOS get their descriptor from
//! the system (`VpnService.Builder.establish()`, the utun of the packet tunnel) and never call
//! this.
//!
//! The namespace case is why this exists: a TUN device belongs to the namespace it was created
//! in, but its descriptor works from anywhere. Opening it from a thread that has joined the
//! test's "phone" namespace gives a process in the host namespace a tunnel whose traffic comes
//! from that namespace, while Embargo's own upstream sockets stay in the host namespace: the
//! same shape as a phone, where the VPN app's sockets bypass the tunnel.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

use crate::EmbargoError;

/// `_IOW('T', 202, int)`: binds a /dev/net/tun descriptor to an interface.
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

fn open_tun(name: &str) -> io::Result<OwnedFd> {
    let path = CString::new("/dev/net/tun").map_err(io::Error::other)?;
    // SAFETY: `path` is a valid C string.
    let raw = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open returned a fresh descriptor nothing else owns.
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
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn enter_netns(netns: &str) -> io::Result<()> {
    let path = format!("/var/run/netns/{netns}");
    let file = std::fs::File::open(&path)?;
    use std::os::fd::AsRawFd;
    // SAFETY: setns on an open namespace file affects only the calling thread.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens (creating if needed) the TUN device `name` in raw-IP mode, inside the network
/// namespace `netns` (a name under /var/run/netns, as `ip netns add` makes) or in the current
/// one. Needs root or CAP_NET_ADMIN. Returns the descriptor; pass it to
/// [`crate::Embargo::start`], which takes ownership. For tests and Linux shells only.
#[uniffi::export]
pub fn linux_open_tun(name: String, netns: Option<String>) -> Result<i32, EmbargoError> {
    crate::error::guard(|| {
        if name.is_empty() || name.len() >= IFNAMSIZ || name.contains(['/', ' ']) {
            return Err(EmbargoError::InvalidInput(format!(
                "invalid interface name {name:?} (1 to 15 characters, no '/' or spaces)"
            )));
        }
        let open = move || -> io::Result<OwnedFd> {
            if let Some(ns) = &netns {
                enter_netns(ns)?;
            }
            open_tun(&name)
        };
        // A namespace is entered on a thread of its own, which then ends: the caller's
        // threads stay in their namespace.
        let fd = std::thread::spawn(open)
            .join()
            .map_err(|_| EmbargoError::Internal("TUN opener thread panicked".into()))?
            .map_err(|e| EmbargoError::Tunnel(format!("cannot open TUN device: {e}")))?;
        Ok(fd.into_raw_fd())
    })
}
