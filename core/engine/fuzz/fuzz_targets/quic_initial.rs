//! QUIC Initial sniffer: header parsing and AEAD on raw datagrams, and, past the AEAD (which
//! random input never passes), the CRYPTO frame parser, reassembler and ClientHello parser on
//! arbitrary "decrypted" payloads.
#![no_main]

use embargo_engine::inspect::quic::{CryptoReassembler, InitialSniffer};
use embargo_engine::inspect::tls;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Split the input into up to three datagrams at positions chosen by its first bytes.
    let mut sniffer = InitialSniffer::new();
    let mut rest = data;
    for _ in 0..3 {
        let Some((&len, tail)) = rest.split_first() else {
            break;
        };
        let cut = (usize::from(len) * 8).min(tail.len());
        let _ = sniffer.push_datagram(&tail[..cut]);
        rest = &tail[cut..];
    }
    let _ = sniffer.push_datagram(data);

    let mut crypto = CryptoReassembler::new();
    if crypto.push_frames(data) {
        let _ = tls::client_hello_from_handshake(crypto.contiguous());
    }
});
