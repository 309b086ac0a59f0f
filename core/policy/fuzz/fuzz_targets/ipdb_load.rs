//! Fuzzes the IP database readers: ip-location-db ASN and country CSV, iptoasn TSV, detection
//! and gzip input. The first byte picks the format (or detection); every loaded table is then
//! looked up at a few addresses. Nothing may panic, and memory stays bounded by the line cap.
#![no_main]

use embargo_policy::{IpDb, IpDbFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let format = match selector % 4 {
        0 => None,
        1 => Some(IpDbFormat::AsnCsv),
        2 => Some(IpDbFormat::CountryCsv),
        _ => Some(IpDbFormat::IptoasnTsv),
    };
    let mut db = IpDb::new();
    let report = db.load_bytes("fuzz", format, rest);
    assert!(report.errors.len() <= 50);
    if selector & 0x80 != 0 {
        // The same bytes gzip-compressed, through the decompressing path.
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = enc.write_all(rest);
        if let Ok(gz) = enc.finish() {
            let _ = db.load_bytes("fuzz.gz", format, &gz);
        }
    }
    for addr in [
        "1.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "::",
        "2001:200::1",
        "::ffff:1.2.3.4",
    ] {
        let a = addr.parse().unwrap();
        let _ = db.lookup_asn(a);
        let _ = db.lookup_country(a);
        let _ = db.lookup_countries(a).count();
    }
});
