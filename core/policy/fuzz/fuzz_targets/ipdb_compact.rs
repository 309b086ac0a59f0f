//! Fuzzes the compact IP database reader, the form the bundled country tables ship in and
//! that `IpDb::load_compact_owned` reads at run time: a table is loaded from the bytes, looked
//! up at a few addresses, then checked whole by `IpDb::verify` and looked up again. Nothing
//! may panic, whatever the header, section bounds, index or fact indices say.
#![no_main]

use embargo_policy::IpDb;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut db = IpDb::new();
    let report = db.load_compact_owned("fuzz", data.to_vec());
    assert!(report.error_count <= 1);
    let lookups = |db: &IpDb| {
        for addr in [
            "1.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "2.3.4.5",
            "::",
            "2001:db8::17",
            "::ffff:1.2.3.4",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let a = addr.parse().unwrap();
            let _ = db.lookup_asn(a);
            let _ = db.lookup_country(a);
        }
    };
    lookups(&db);
    if db.verify().is_ok() {
        lookups(&db);
    }
});
