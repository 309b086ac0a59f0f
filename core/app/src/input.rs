//! Bounded reads of the files a person points Embargo at: rule lists, compiled rule sets, IP
//! databases. Each must be a regular file no larger than [`MAX_INPUT`]: `--list /dev/zero`
//! spun forever in the line reader and `--asn-db /dev/zero` read until memory ran out; a FIFO
//! blocked the open. The file is opened non-blocking (a FIFO swapped in after a check cannot
//! hang it), checked on its descriptor, and read through a cap (a file that grows while read).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Largest list, compiled set or IP database read (the biggest real lists are ~30 MB, the
/// full ip-location-db ASN CSV ~40 MB).
pub const MAX_INPUT: u64 = 256 << 20;

/// Opens `path` (a `what`: "list", "ASN database", ...) for reading after checking that it is
/// a regular file of at most [`MAX_INPUT`] bytes; returns it and its size.
pub fn open(path: &Path, what: &str) -> Result<(File, u64)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .with_context(|| format!("{}: cannot open {what}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("{}: cannot read {what}", path.display()))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let is = if kind.is_dir() {
            "a directory"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        bail!(
            "{}: the {what} is {is}, not a regular file: give a file (at most {} MiB)",
            path.display(),
            MAX_INPUT >> 20
        );
    }
    if meta.len() > MAX_INPUT {
        bail!(
            "{}: the {what} is {} MiB, more than the {} MiB limit",
            path.display(),
            meta.len() >> 20,
            MAX_INPUT >> 20
        );
    }
    Ok((file, meta.len()))
}

/// A reader of `path` (see [`open`]) that ends at [`MAX_INPUT`] bytes even if the file grows.
pub fn reader(path: &Path, what: &str) -> Result<std::io::Take<File>> {
    Ok(open(path, what)?.0.take(MAX_INPUT))
}

/// The whole of `path` (see [`open`]); an error if it grew past [`MAX_INPUT`] while read.
pub fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    let (file, len) = open(path, what)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{}: cannot read {what}", path.display()))?;
    if bytes.len() as u64 > MAX_INPUT {
        bail!(
            "{}: the {what} grew past the {} MiB limit while read",
            path.display(),
            MAX_INPUT >> 20
        );
    }
    Ok(bytes)
}

/// [`read`], and for an IP database: gzip-compressed content is decompressed here, through the
/// same cap, so a small .gz cannot expand without bound (a "zip bomb") in the parser.
pub fn read_database(path: &Path, what: &str) -> Result<Vec<u8>> {
    gunzip_capped(path, what, read(path, what)?, MAX_INPUT)
}

/// `bytes` decompressed when they are gzip (at most `cap` bytes), else as they are.
fn gunzip_capped(path: &Path, what: &str, bytes: Vec<u8>, cap: u64) -> Result<Vec<u8>> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .take(cap + 1)
        .read_to_end(&mut plain)
        .with_context(|| format!("{}: cannot decompress the {what}", path.display()))?;
    if plain.len() as u64 > cap {
        bail!(
            "{}: the {what} decompresses to more than the {} MiB limit",
            path.display(),
            cap >> 20
        );
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_directories_are_refused_files_are_read() {
        for (path, is) in [("/dev/zero", "a device"), ("/", "a directory")] {
            let err = format!("{:#}", read(Path::new(path), "list").unwrap_err());
            assert!(err.contains(is) && err.contains(path), "{err}");
        }
        let dir = std::env::temp_dir().join(format!("embargo-input-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = format!("{:#}", read(&fifo, "list").unwrap_err());
        assert!(err.contains("a FIFO"), "{err}");
        // a gzip bomb (the cap scaled down: 3 MiB of zeros against a 2 MiB cap)
        let bomb = dir.join("asn.csv.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &vec![0u8; 3 << 20]).unwrap();
        let gz = enc.finish().unwrap();
        assert!(gz.len() < 64 * 1024);
        let err = gunzip_capped(&bomb, "ASN database", gz.clone(), 2 << 20).unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.contains("decompresses to more than the 2 MiB limit"),
            "{err}"
        );
        assert_eq!(
            gunzip_capped(&bomb, "ASN database", gz, 4 << 20)
                .unwrap()
                .len(),
            3 << 20
        );
        let file = dir.join("list.txt");
        std::fs::write(&file, "a.example\n").unwrap();
        assert_eq!(read(&file, "list").unwrap(), b"a.example\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
