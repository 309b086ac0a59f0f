package org.embargo.ffi

import com.sun.net.httpserver.HttpServer
import java.io.File
import java.net.InetSocketAddress
import java.nio.file.Path
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assumptions.assumeTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir

/**
 * A real tunnel in a network namespace, driven from Kotlin the way the Android app drives it:
 * the "phone" namespace resolves and connects through Embargo (started with a TUN descriptor),
 * then the test reads the history and the live events (with the suspend nextEvent()).
 *
 *   host namespace (the JVM: Embargo's upstream sockets, an HTTP server, dnsmasq)
 *     veth emk<pid> 10.232.0.1/32
 *   phone namespace emkp-<pid>: TUN emt0 10.232.9.2/24, default route through it
 *
 * Needs root (namespaces, TUN); skipped loudly otherwise.
 */
class TunnelTest {
    @TempDir
    lateinit var dir: Path

    private val pid = ProcessHandle.current().pid().toString(16)
    private val ns = "emkp-$pid"
    private val veth = "emk$pid".take(14)
    private val serverIp = "10.232.0.1"
    private val port = 8080
    private val tunName = "emt0"
    private var http: HttpServer? = null
    private var dnsmasq: Process? = null

    private fun sh(vararg cmd: String, check: Boolean = true): Pair<Int, String> {
        val p = ProcessBuilder(*cmd).redirectErrorStream(true).start()
        val out = p.inputStream.bufferedReader().readText()
        if (!p.waitFor(30, TimeUnit.SECONDS)) p.destroyForcibly()
        val rc = p.exitValue()
        if (check && rc != 0) throw IllegalStateException("${cmd.joinToString(" ")} -> $rc\n$out")
        return Pair(rc, out)
    }

    private fun phone(vararg cmd: String) = sh("ip", "netns", "exec", ns, *cmd, check = false)

    private fun whyNot(): String? {
        val uid = sh("id", "-u", check = false).second.trim()
        if (uid != "0") return "not root: the tunnel test needs network namespaces and a TUN device"
        for (tool in listOf("ip", "dnsmasq", "dig", "curl")) {
            if (sh("sh", "-c", "command -v $tool", check = false).first != 0) {
                return "$tool is not installed (tests/install-deps.sh installs it)"
            }
        }
        if (!File("/dev/net/tun").exists()) return "/dev/net/tun is missing"
        return null
    }

    @BeforeEach
    fun up() {
        val why = whyNot()
        if (why != null) System.err.println("\n*** SKIPPING the real-tunnel test: $why ***\n")
        assumeTrue(why == null, why)
        down()
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", veth + "p")
        sh("ip", "addr", "add", "$serverIp/32", "dev", veth)
        sh("ip", "link", "set", veth, "up")
        sh("ip", "link", "set", veth + "p", "up")
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        http = HttpServer.create(InetSocketAddress(serverIp, port), 16).apply {
            createContext("/") { ex ->
                val body = "hello from the server\n".toByteArray()
                ex.sendResponseHeaders(200, body.size.toLong())
                ex.responseBody.use { it.write(body) }
            }
            start()
        }
        dnsmasq = ProcessBuilder(
            "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
            "--bind-interfaces", "--listen-address=$serverIp", "--port=53", "--pid-file", "--user=root",
            "--address=/allowed.test/$serverIp",
        ).redirectOutput(ProcessBuilder.Redirect.DISCARD).redirectError(ProcessBuilder.Redirect.DISCARD).start()
        Thread.sleep(300)
        check(dnsmasq!!.isAlive) { "dnsmasq did not start" }
    }

    @AfterEach
    fun down() {
        http?.stop(0)
        http = null
        dnsmasq?.let { it.destroy(); it.waitFor(3, TimeUnit.SECONDS); it.destroyForcibly() }
        dnsmasq = null
        sh("ip", "netns", "del", ns, check = false)
        sh("ip", "link", "del", veth, check = false)
    }

    class Hooks : PlatformHooks {
        @Volatile var protected = 0
        override fun protect(fd: Int) {
            // Embargo's sockets live in the host namespace: outside the tunnel already.
            protected++
        }
        override fun appOwner(protocol: Protocol, src: String, dst: String): String? = "org.embargo.test.phone"
    }

    @Test
    fun aRealTunnelBlocksAndAllowsAndTheAppSeesHistoryAndEvents() = runBlocking {
        // The JVM's first callback from a native thread attaches it (slow): wait longer than the
        // default 20 ms for the app owner so the attribution check is exact.
        val embargo = Embargo(EmbargoConfig(dnsUpstream = "$serverIp:53", appWaitMs = 1000u), dir.resolve("state").toString())
        embargo.setList("test-list", "tracker.test\n".toByteArray(), ListFormat.DOMAINS)
        val hooks = Hooks()
        val fd = linuxOpenTun(tunName, ns)
        embargo.start(fd, hooks)
        assertEquals(LiveEvent.StateChanged(TunnelState.RUNNING, null), withTimeout(5000) { embargo.nextEvent() })
        try {
            sh("ip", "-n", ns, "addr", "add", "10.232.9.2/24", "dev", tunName)
            sh("ip", "-n", ns, "link", "set", tunName, "up")
            sh("ip", "-n", ns, "route", "add", "default", "dev", tunName)

            val allowed = phone("dig", "+time=3", "+tries=2", "+short", "@$serverIp", "allowed.test")
            assertEquals(serverIp, allowed.second.trim(), allowed.second)
            val blocked = phone("dig", "+time=3", "+tries=1", "+short", "@$serverIp", "log-va.tiktokv.com")
            assertEquals("0.0.0.0", blocked.second.trim(), blocked.second)
            val listed = phone("dig", "+time=3", "+tries=1", "+short", "@$serverIp", "tracker.test")
            assertEquals("0.0.0.0", listed.second.trim(), listed.second)
            val ok = phone("curl", "-sS", "-m", "10", "http://$serverIp:$port/")
            assertEquals("hello from the server\n", ok.second)
            val refused = phone("curl", "-sS", "-m", "10", "--resolve", "tracker.test:$port:$serverIp", "http://tracker.test:$port/")
            assertNotEquals(0, refused.first, refused.second)

            // The live view: a suspend nextEvent() under coroutines sees the block.
            val ev = withTimeout(5000) {
                var e = embargo.nextEvent()
                while (!(e is LiveEvent.Decision && e.event.name == "log-va.tiktokv.com")) e = embargo.nextEvent()
                e as LiveEvent.Decision
            }
            assertEquals(Verdict.BLOCK, ev.event.decision.verdict)
            val status = embargo.status()
            assertEquals(TunnelState.RUNNING, status.state)
            assertTrue(status.packetsIn > 0uL && status.dnsBlocked >= 2uL, status.toString())
            assertTrue(hooks.protected >= 1)
        } finally {
            embargo.stop()
        }
        embargo.flushHistory()
        val rows = embargo.history(HistoryQuery(limit = 1000u)).records
        val seen = rows.map { Pair(it.name, it.verdict) }.toSet()
        assertTrue(Pair("log-va.tiktokv.com", Verdict.BLOCK) in seen, rows.toString())
        assertTrue(Pair("tracker.test", Verdict.BLOCK) in seen, rows.toString())
        assertTrue(Pair("allowed.test", Verdict.ALLOW) in seen, rows.toString())
        val listedRow = rows.first { it.name == "tracker.test" && it.protocol == Protocol.DNS }
        assertEquals(Pair("test-list", 1u), Pair(listedRow.list, listedRow.line))
        val tcp = rows.filter { it.protocol == Protocol.TCP && it.verdict == Verdict.ALLOW && it.port.toInt() == port }
        assertTrue(tcp.isNotEmpty(), rows.toString())
        // The appOwner hook named the app: the history row carries it.
        assertTrue(tcp.any { it.app == "org.embargo.test.phone" }, tcp.toString())
        // The rest of the live events end with the stop.
        var last: LiveEvent? = null
        while (true) { last = embargo.tryNextEvent() ?: break }
        assertEquals(LiveEvent.StateChanged(TunnelState.STOPPED, null), last)
        embargo.shutdown()
        embargo.close()
    }

    class RefusingHooks : PlatformHooks {
        override fun protect(fd: Int) = throw IllegalStateException("VpnService.protect is gone")
        override fun appOwner(protocol: Protocol, src: String, dst: String): String? = null
    }

    @Test
    fun aKotlinExceptionInProtectFailsThatConnectionOnlyAndIsReported() = runBlocking {
        val embargo = Embargo(EmbargoConfig(dnsUpstream = "$serverIp:53"), dir.resolve("state").toString())
        embargo.start(linuxOpenTun(tunName, ns), RefusingHooks())
        try {
            sh("ip", "-n", ns, "addr", "add", "10.232.9.2/24", "dev", tunName)
            sh("ip", "-n", ns, "link", "set", tunName, "up")
            sh("ip", "-n", ns, "route", "add", "default", "dev", tunName)
            // The upstream socket cannot be protected, so the connection fails...
            val refused = phone("curl", "-sS", "-m", "5", "http://$serverIp:$port/")
            assertNotEquals(0, refused.first, refused.second)
            // ...the app hears why...
            val error = withTimeout(5000) {
                var e = embargo.nextEvent()
                while (e !is LiveEvent.Error) e = embargo.nextEvent()
                e
            }
            assertTrue(error.message.contains("VpnService.protect is gone"), error.message)
            // ...and the tunnel keeps working for what needs no upstream socket.
            val blocked = phone("dig", "+time=3", "+tries=1", "+short", "@$serverIp", "log-va.tiktokv.com")
            assertEquals("0.0.0.0", blocked.second.trim(), blocked.second)
            assertEquals(TunnelState.RUNNING, embargo.status().state)
        } finally {
            embargo.stop()
        }
        embargo.shutdown()
        embargo.close()
    }
}
