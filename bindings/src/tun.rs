//! Linux only: opening a TUN device, optionally inside a network namespace, for the JVM and
//! Python test suites and for Linux desktop shells. Android and iOS get their descriptor from
//! the system (`VpnService.Builder.establish()`, the utun of the packet tunnel) and never call
//! this. The device itself is opened by [`embargo_driver::tun_linux`], as `embargo run` does.
//!
//! The namespace case is why this exists: a TUN device belongs to the namespace it was created
//! in, but its descriptor works from anywhere. Opening it from a thread that has joined the
//! test's "phone" namespace gives a process in the host namespace a tunnel whose traffic comes
//! from that namespace, while Embargo's own upstream sockets stay in the host namespace: the
//! same shape as a phone, where the VPN app's sockets bypass the tunnel.

use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};

use embargo_driver::tun_linux;

use crate::EmbargoError;

fn enter_netns(netns: &str) -> io::Result<()> {
    let path = format!("/var/run/netns/{netns}");
    let file = std::fs::File::open(&path)?;
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
        tun_linux::check_name(&name).map_err(|e| EmbargoError::InvalidInput(e.to_string()))?;
        let open = move || -> io::Result<OwnedFd> {
            if let Some(ns) = &netns {
                enter_netns(ns)?;
            }
            tun_linux::open(&name)
                .map(|(fd, _)| fd)
                .map_err(|e| match e {
                    tun_linux::OpenError::CloneDevice(source)
                    | tun_linux::OpenError::SetIff { source, .. } => source,
                    invalid @ tun_linux::OpenError::InvalidName(_) => {
                        io::Error::new(io::ErrorKind::InvalidInput, invalid.to_string())
                    }
                })
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
