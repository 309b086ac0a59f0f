//! Encodes the bundled country database (`data/geo-whois-asn-country-ipv{4,6}.csv.gz`) into
//! the compact form that `src/ipdb.rs` reads in place (`$OUT_DIR/geo-whois-asn-country-ipv4.eipd`
//! and `-ipv6.eipd`, one database each as before, so attributions keep naming the file),
//! with the same encoder (`src/ipdb/compact.rs`, included below), so the binary carries the
//! table ready to use: no gunzip and no parse at start, and its pages are file-backed, so only
//! those that lookups touch become resident. `builtin::tests` check the result against the
//! runtime CSV parse of the same files.
//!
//! The CSV here is ip-location-db's `start,end,CC`, one range per line; any line that does not
//! parse fails the build with its file and line (the data is ours and committed).

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "src/ipdb/compact.rs"]
mod compact;

const SOURCES: [&str; 2] = [
    "data/geo-whois-asn-country-ipv4.csv.gz",
    "data/geo-whois-asn-country-ipv6.csv.gz",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/ipdb/compact.rs");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for source in SOURCES {
        println!("cargo:rerun-if-changed={source}");
        let mut v4: Vec<compact::RangeFact<u32>> = Vec::new();
        let mut v6: Vec<compact::RangeFact<u128>> = Vec::new();
        let mut facts: Vec<[u8; 2]> = Vec::new();
        if let Err(e) = read_country_csv(Path::new(source), &mut facts, &mut v4, &mut v6) {
            panic!("{source}: {e}");
        }
        let bytes = compact::encode_country(&facts, &mut v4, &mut v6);
        let name = Path::new(source)
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".csv.gz"))
            .expect("SOURCES end in .csv.gz");
        let out = out_dir.join(format!("{name}.eipd"));
        std::fs::write(&out, bytes).unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
    }
}

fn read_country_csv(
    path: &Path,
    facts: &mut Vec<[u8; 2]>,
    v4: &mut Vec<compact::RangeFact<u32>>,
    v6: &mut Vec<compact::RangeFact<u128>>,
) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let reader = BufReader::new(flate2::read::MultiGzDecoder::new(file));
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", n + 1))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        let mut fields = line.split(',');
        let (Some(start), Some(end), Some(code), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad("expected start,end,CC"));
        };
        let code = code.trim().as_bytes();
        let code: [u8; 2] = match code {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                [a.to_ascii_uppercase(), b.to_ascii_uppercase()]
            }
            _ => return Err(bad("country")),
        };
        let fact = match facts.iter().position(|&c| c == code) {
            Some(i) => i as u32,
            None => {
                facts.push(code);
                facts.len() as u32 - 1
            }
        };
        let start: IpAddr = start.trim().parse().map_err(|_| bad("start"))?;
        let end: IpAddr = end.trim().parse().map_err(|_| bad("end"))?;
        match (start, end) {
            (IpAddr::V4(s), IpAddr::V4(e)) if s <= e => v4.push((s.into(), e.into(), fact)),
            (IpAddr::V6(s), IpAddr::V6(e)) if s <= e => v6.push((s.into(), e.into(), fact)),
            _ => return Err(bad("range")),
        }
    }
    Ok(())
}
