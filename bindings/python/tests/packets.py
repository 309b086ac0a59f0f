"""Builds the IPv4/UDP DNS question packets an app's stack would write into the tunnel."""

import socket
import struct


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def dns_question(name: str, qid: int = 0x1234, qtype: int = 1) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack(">HH", qtype, 1)


def udp_packet(payload: bytes, src: str, dst: str, sport: int, dport: int) -> bytes:
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    length = 8 + len(payload)
    udp = struct.pack(">HHHH", sport, dport, length, 0) + payload
    csum = checksum(s + d + struct.pack(">BBH", 0, 17, length) + udp) or 0xFFFF
    udp = udp[:6] + struct.pack(">H", csum) + udp[8:]
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + length, 0x1111, 0x4000, 64, 17, 0, s, d)
    ip = ip[:10] + struct.pack(">H", checksum(ip)) + ip[12:]
    return ip + udp


def dns_query_packet(name: str, sport: int = 40000, qid: int = 0x1234,
                     src: str = "10.111.0.2", dst: str = "10.111.0.1") -> bytes:
    """A DNS A question for `name` from an app at src:sport to a resolver at dst:53."""
    return udp_packet(dns_question(name, qid), src, dst, sport, 53)


def dns_answer_addrs(packet: bytes) -> tuple[int, list[str]]:
    """(rcode, A addresses) of a DNS answer inside an IPv4/UDP packet from the tunnel."""
    ihl = (packet[0] & 0x0F) * 4
    dns = packet[ihl + 8:]
    flags, qd, an = struct.unpack(">HHH", dns[2:8])
    pos = 12
    for _ in range(qd):
        while dns[pos] != 0:
            pos += 1 + dns[pos]
        pos += 5
    addrs = []
    for _ in range(an):
        if dns[pos] & 0xC0 == 0xC0:
            pos += 2
        else:
            while dns[pos] != 0:
                pos += 1 + dns[pos]
            pos += 1
        rtype, _cls, _ttl, rdlen = struct.unpack(">HHIH", dns[pos:pos + 10])
        pos += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(dns[pos:pos + 4]))
        pos += rdlen
    return flags & 0x0F, addrs
