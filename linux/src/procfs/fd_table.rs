//! The socket inodes of one process's descriptor table (`/proc/PID/fd`).
//!
//! A table is read with one descriptor for the directory: `getdents64` lists it and
//! `readlinkat` reads each link relative to it. `std::fs::read_dir` plus `read_link` of each
//! entry's full path made the kernel walk `/proc`, the pid, `fd` and the descriptor again for
//! every link (the path walks were a fifth of a lookup's CPU) and spent an `fstat` in
//! `opendir`.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The fixed part of a `linux_dirent64`: inode u64, offset i64, record length u16,
/// type u8, then the NUL-terminated name.
const DIRENT_HEADER: usize = 19;

/// Room for ~150 entries per `getdents64`: one call lists a typical app's table.
const LIST_BUFFER: usize = 4096;

/// A link's text: `socket:[INODE]` is at most 29 bytes; longer links are not sockets.
const LINK_BUFFER: usize = 64;

/// Calls `seen` with the inode of every socket in the descriptor table at `dir`. Fails
/// with `NotFound` when the process is gone, `PermissionDenied` when its table is not
/// ours to read (found before or at the first link); a descriptor closed meanwhile is
/// skipped.
pub fn socket_inodes(dir: &Path, mut seen: impl FnMut(u64)) -> io::Result<()> {
    let dir = File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)?;
    // Records are read field by field from bytes: no alignment needed.
    let mut list = [0u8; LIST_BUFFER];
    loop {
        // SAFETY: the kernel writes at most `LIST_BUFFER` bytes into `list`, which is
        // that long, and reads nothing from it.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                list.as_mut_ptr(),
                LIST_BUFFER,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(());
        }
        for name in entries(list.get(..n as usize).unwrap_or_default()) {
            match link_inode(&dir, name) {
                Ok(Some(inode)) => seen(inode),
                Ok(None) => {}
                // Another user's process: no other link of the table reads either.
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Err(e),
                Err(_) => {} // closed meanwhile
            }
        }
    }
}

/// The names of the records in one `getdents64` result, `.` and `..` left out; a record
/// whose lengths do not fit ends the walk instead of being read past.
fn entries(mut filled: &[u8]) -> impl Iterator<Item = &CStr> {
    std::iter::from_fn(move || loop {
        let len_bytes = filled.get(16..18)?;
        let len = usize::from(u16::from_ne_bytes([len_bytes[0], len_bytes[1]]));
        if len < DIRENT_HEADER || len > filled.len() {
            return None;
        }
        let (record, rest) = filled.split_at(len);
        filled = rest;
        let name = CStr::from_bytes_until_nul(record.get(DIRENT_HEADER..)?).ok()?;
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            return Some(name);
        }
    })
}

/// The socket inode `dir/name` links to, or `None` for any other link.
fn link_inode(dir: &File, name: &CStr) -> io::Result<Option<u64>> {
    let mut link = [0u8; LINK_BUFFER];
    // SAFETY: `name` is NUL-terminated; the kernel writes at most `LINK_BUFFER` bytes.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            link.as_mut_ptr().cast(),
            LINK_BUFFER,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(link
        .get(..n as usize)
        .and_then(super::process::socket_inode))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record as the kernel lays it out (8-byte aligned length).
    fn record(name: &str) -> Vec<u8> {
        let len = (DIRENT_HEADER + name.len() + 1).next_multiple_of(8);
        let mut r = vec![0u8; len];
        r[16..18].copy_from_slice(&(len as u16).to_ne_bytes());
        r[18] = 10; // DT_LNK
        r[DIRENT_HEADER..DIRENT_HEADER + name.len()].copy_from_slice(name.as_bytes());
        r
    }

    #[test]
    fn records_are_split_and_dots_skipped() {
        let buf = [record("."), record(".."), record("0"), record("251")].concat();
        let names: Vec<_> = entries(&buf).map(|n| n.to_str().unwrap()).collect();
        assert_eq!(names, ["0", "251"]);
    }

    #[test]
    fn a_record_longer_than_what_is_left_ends_the_walk() {
        let mut buf = [record("3"), record("4")].concat();
        let second = buf.len() / 2;
        buf[second + 16..second + 18].copy_from_slice(&200u16.to_ne_bytes());
        let names: Vec<_> = entries(&buf).collect();
        assert_eq!(names.len(), 1);
        // and lengths too short to hold a header, or a name without its NUL
        assert_eq!(entries(&[0u8; 18]).count(), 0);
        let mut short = record("5");
        short[16..18].copy_from_slice(&3u16.to_ne_bytes());
        assert_eq!(entries(&short).count(), 0);
        let mut unterminated = record("6");
        for b in &mut unterminated[DIRENT_HEADER..] {
            *b = b'7';
        }
        assert_eq!(entries(&unterminated).count(), 0);
    }

    #[test]
    fn reads_the_socket_of_this_process() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let path = format!("/proc/self/fd/{}", socket.as_raw_fd());
        let link = std::fs::read_link(path).unwrap();
        let want =
            super::super::process::socket_inode(link.as_os_str().as_encoded_bytes()).unwrap();
        let mut found = Vec::new();
        socket_inodes(Path::new("/proc/self/fd"), |i| found.push(i)).unwrap();
        assert!(found.contains(&want), "{found:?} lacks {want}");
    }

    #[test]
    fn a_table_that_is_gone_is_not_found() {
        let err = socket_inodes(Path::new("/proc/4194304999/fd"), |_| {}).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
