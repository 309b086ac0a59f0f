#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets from the real capture and the RFC 9001 sample.

Run from core/engine/fuzz: python3 make_seeds.py. Seeds are small and committed; the corpora the
fuzzer grows go elsewhere (see README.md).
"""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
PCAP = os.path.join(HERE, "../../../../shared/data/pcap/metadata.pcap")
RFC = os.path.join(HERE, "../src/inspect/testdata/rfc9001-a2-client-initial.hex")


def save(target, data):
    folder = os.path.join(HERE, "seeds", target)
    os.makedirs(folder, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def frames():
    raw = open(PCAP, "rb").read()
    at = 24
    while at + 16 <= len(raw):
        captured = struct.unpack("<I", raw[at + 8:at + 12])[0]
        yield raw[at + 16:at + 16 + captured][14:]
        at += 16 + captured


def transport(ip):
    if ip[0] >> 4 == 4:
        ihl = (ip[0] & 15) * 4
        return ip[9], ip[ihl:]
    if ip[0] >> 4 == 6:
        return ip[6], ip[40:]
    return None, b""


for ip in frames():
    proto, seg = transport(ip)
    if proto == 17 and len(seg) >= 8:
        sport, dport = struct.unpack(">HH", seg[:4])
        if 53 in (sport, dport):
            save("dns_message", seg[8:])
    elif proto == 6 and len(seg) >= 20:
        sport, dport = struct.unpack(">HH", seg[:4])
        payload = seg[(seg[12] >> 4) * 4:]
        if not payload:
            continue
        if 53 in (sport, dport) and len(payload) > 2:
            save("dns_message", payload[2:])
        elif payload[:1] == b"\x16":
            save("tls_client_hello", payload)
            save("tls_client_hello", payload[:len(payload) // 2])
            # The bare handshake form, as QUIC carries it.
            save("tls_client_hello", payload[5:])
            # A decrypted Initial payload: one CRYPTO frame with the handshake, then PADDING.
            hello = payload[5:]
            frame = bytes([0x06, 0x00]) + struct.pack(">H", 0x4000 | len(hello)) + hello
            save("quic_initial", frame + bytes(64))
        elif payload[:4] in (b"GET ", b"POST", b"HEAD"):
            save("http_host", payload)

save("quic_initial", bytes.fromhex("".join(open(RFC).read().split())))

# Requests to an HTTP proxy: a CONNECT head followed by the tunnel's first bytes, an
# absolute-form request whose Host header names another host, a bare CONNECT without Host.
save("http_host", b"CONNECT tracker.example:443 HTTP/1.1\r\nHost: tracker.example:443\r\n"
                  b"User-Agent: curl/8.5.0\r\nProxy-Connection: Keep-Alive\r\n\r\n"
                  b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
save("http_host", b"GET http://allowed.example:8080/a?b=c HTTP/1.1\r\nHost: blocked.example\r\n"
                  b"Accept: */*\r\nProxy-Connection: Keep-Alive\r\n\r\n")
save("http_host", b"CONNECT [2001:db8::1]:8443 HTTP/1.0\n\n")
