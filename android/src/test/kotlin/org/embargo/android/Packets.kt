package org.embargo.android

// A copy of bindings/kotlin/src/test/kotlin/org/embargo/ffi/Packets.kt (same packets the JVM
// suite pushes), kept in the app's package so the Robolectric suite stands alone.

import java.net.InetAddress
import java.nio.ByteBuffer

/** Builds the IPv4/UDP DNS packets an app's stack writes into the tunnel, and reads answers. */
object Packets {
    private fun checksum(data: ByteArray): Int {
        var sum = 0L
        var i = 0
        while (i + 1 < data.size) {
            sum += ((data[i].toInt() and 0xff) shl 8) or (data[i + 1].toInt() and 0xff)
            i += 2
        }
        if (i < data.size) sum += (data[i].toInt() and 0xff) shl 8
        while (sum shr 16 != 0L) sum = (sum and 0xffff) + (sum shr 16)
        return (sum.inv() and 0xffff).toInt()
    }

    fun dnsQuestion(name: String, id: Int): ByteArray {
        val b = ByteBuffer.allocate(512)
        b.putShort(id.toShort()).putShort(0x0100).putShort(1).putShort(0).putShort(0).putShort(0)
        for (label in name.split('.')) {
            b.put(label.length.toByte()).put(label.toByteArray())
        }
        b.put(0).putShort(1).putShort(1)
        return b.array().copyOf(b.position())
    }

    /** A DNS A question for [name] from an app at 10.111.0.2:[sport] to 10.111.0.1:53. */
    fun dnsQueryPacket(name: String, sport: Int, id: Int = 0x1234): ByteArray {
        val src = InetAddress.getByName("10.111.0.2").address
        val dst = InetAddress.getByName("10.111.0.1").address
        val payload = dnsQuestion(name, id)
        val len = 8 + payload.size
        val udp = ByteBuffer.allocate(len)
        udp.putShort(sport.toShort()).putShort(53).putShort(len.toShort()).putShort(0).put(payload)
        val pseudo = ByteBuffer.allocate(12 + len)
        pseudo.put(src).put(dst).put(0).put(17).putShort(len.toShort()).put(udp.array())
        var c = checksum(pseudo.array())
        if (c == 0) c = 0xffff
        udp.putShort(6, c.toShort())
        val ip = ByteBuffer.allocate(20 + len)
        ip.put(0x45).put(0).putShort((20 + len).toShort()).putShort(0x1111).putShort(0x4000)
            .put(64).put(17).putShort(0).put(src).put(dst)
        ip.putShort(10, checksum(ip.array().copyOf(20)).toShort())
        ip.put(udp.array())
        return ip.array()
    }

    /** (rcode, A addresses) of a DNS answer inside an IPv4/UDP packet. */
    fun dnsAnswer(packet: ByteArray): Pair<Int, List<String>> {
        val ihl = (packet[0].toInt() and 0x0f) * 4
        val d = ByteBuffer.wrap(packet, ihl + 8, packet.size - ihl - 8).slice()
        val flags = d.getShort(2).toInt() and 0xffff
        val qd = d.getShort(4).toInt()
        val an = d.getShort(6).toInt()
        var pos = 12
        repeat(qd) {
            while (d.get(pos).toInt() != 0) pos += 1 + d.get(pos)
            pos += 5
        }
        val addrs = mutableListOf<String>()
        repeat(an) {
            if ((d.get(pos).toInt() and 0xc0) == 0xc0) pos += 2 else {
                while (d.get(pos).toInt() != 0) pos += 1 + d.get(pos)
                pos += 1
            }
            val type = d.getShort(pos).toInt()
            val rdlen = d.getShort(pos + 8).toInt()
            pos += 10
            if (type == 1 && rdlen == 4) {
                addrs.add((0 until 4).joinToString(".") { (d.get(pos + it).toInt() and 0xff).toString() })
            }
            pos += rdlen
        }
        return Pair(flags and 0x0f, addrs)
    }
}
