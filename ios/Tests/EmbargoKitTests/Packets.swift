import Foundation

/// IPv4/UDP DNS packets as an app's stack writes them into the tunnel, and the reading of the
/// answers (as bindings/python/tests/packets.py does for the Python suite).
enum Packets {
    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }

    /// An A question for `name` from 10.111.0.2:`sourcePort` to 10.111.0.1:53.
    static func dnsQuestion(_ name: String, id: UInt16, sourcePort: UInt16) -> Data {
        var dns: [UInt8] = []
        for field: UInt16 in [id, 0x0100, 1, 0, 0, 0] { dns += be16(field) }
        for label in name.split(separator: ".") {
            dns.append(UInt8(label.utf8.count))
            dns += Array(label.utf8)
        }
        dns.append(0)
        dns += be16(1)
        dns += be16(1)
        let src: [UInt8] = [10, 111, 0, 2], dst: [UInt8] = [10, 111, 0, 1]
        let length = UInt16(8 + dns.count)
        var udp: [UInt8] = []
        for field: UInt16 in [sourcePort, 53, length, 0] { udp += be16(field) }
        udp += dns
        var pseudo: [UInt8] = src
        pseudo += dst
        pseudo += [0, 17]
        pseudo += be16(length)
        var csum = checksum(pseudo + udp)
        if csum == 0 { csum = 0xFFFF }
        udp.replaceSubrange(6..<8, with: be16(csum))
        var ip: [UInt8] = [0x45, 0]
        for field: UInt16 in [20 + length, 0x1111, 0x4000] { ip += be16(field) }
        ip += [64, 17, 0, 0]
        ip += src
        ip += dst
        ip.replaceSubrange(10..<12, with: be16(checksum(ip)))
        return Data(ip + udp)
    }

    struct Malformed: Error {}

    /// The A addresses of a DNS answer inside an IPv4/UDP packet from the tunnel.
    static func dnsAnswerAddresses(_ packet: Data) throws -> [String] {
        let p = [UInt8](packet)
        guard p.count > 28, p[0] >> 4 == 4, p[9] == 17 else { throw Malformed() }
        let dns = Array(p[(Int(p[0] & 0x0F) * 4 + 8)...])
        func u16(_ at: Int) -> Int { Int(dns[at]) << 8 | Int(dns[at + 1]) }
        let questions = u16(4), answers = u16(6)
        var pos = 12
        func skipName() {
            while dns[pos] != 0 {
                if dns[pos] & 0xC0 == 0xC0 { pos += 1; break }
                pos += 1 + Int(dns[pos])
            }
            pos += 1
        }
        for _ in 0..<questions { skipName(); pos += 4 }
        var out: [String] = []
        for _ in 0..<answers {
            skipName()
            let type = u16(pos), rdlength = u16(pos + 8)
            pos += 10
            if type == 1, rdlength == 4 {
                out.append(dns[pos..<pos + 4].map(String.init).joined(separator: "."))
            }
            pos += rdlength
        }
        return out
    }
}
