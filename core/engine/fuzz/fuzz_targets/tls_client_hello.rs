//! TLS ClientHello parser on arbitrary stream prefixes, with and without the record layer.
#![no_main]

use embargo_engine::inspect::{tls, Sniff};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = tls::client_hello(data);
    let _ = tls::client_hello_from_handshake(data);
    // A complete hello stays complete (and the same) when more stream bytes follow it.
    if let Sniff::Done(hello) = &whole {
        let mut longer = data.to_vec();
        longer.extend_from_slice(&[0x17, 3, 3, 0, 1, 0]);
        assert_eq!(tls::client_hello(&longer), Sniff::Done(hello.clone()));
    }
});
