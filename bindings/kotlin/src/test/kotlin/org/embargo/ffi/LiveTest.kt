package org.embargo.ffi

import java.nio.file.Path
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.async
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir

/** The live view and the history screen, fed by the real engine through the packet interface
 *  (no root needed): DNS questions go in as IP packets, answers come out to the sink. */
class LiveTest {
    @TempDir
    lateinit var dir: Path
    private lateinit var embargo: Embargo

    class QueueSink : PacketSink {
        val packets = LinkedBlockingQueue<ByteArray>()
        override fun writePacket(packet: ByteArray) {
            packets.put(packet)
        }
    }

    object NoHooks : PlatformHooks {
        override fun protect(fd: Int) {}
        override fun appOwner(protocol: Protocol, src: String, dst: String): String? = null
    }

    @BeforeEach
    fun open() {
        embargo = Embargo(EmbargoConfig(), dir.resolve("state").toString())
    }

    @AfterEach
    fun close() {
        embargo.shutdown()
        embargo.close()
    }

    /** Suspends on nextEvent() until a decision about [name] arrives. */
    private suspend fun decisionFor(name: String): ConnectionEvent {
        while (true) {
            val ev = embargo.nextEvent()
            if (ev is LiveEvent.Decision && ev.event.name == name) return ev.event
            assertNotNull(ev)
        }
    }

    @Test
    fun blockedDnsQuestionsReachTheLiveViewAndTheHistory() = runBlocking {
        val sink = QueueSink()
        embargo.startWithPackets(sink, NoHooks)
        val first = withTimeout(5000) { embargo.nextEvent() }
        assertEquals(LiveEvent.StateChanged(TunnelState.RUNNING, null), first)

        assertTrue(embargo.pushPacket(Packets.dnsQueryPacket("log-va.tiktokv.com", 41001, 7)))
        val answer = sink.packets.poll(5, TimeUnit.SECONDS)
        assertNotNull(answer, "no DNS answer written to the sink")
        assertEquals(Pair(0, listOf("0.0.0.0")), Packets.dnsAnswer(answer!!))
        val ev = withTimeout(5000) { decisionFor("log-va.tiktokv.com") }
        assertEquals(Verdict.BLOCK, ev.decision.verdict)
        assertEquals(Protocol.DNS, ev.protocol)
        assertEquals("builtin", ev.decision.rule?.list)

        embargo.pushPacket(Packets.dnsQueryPacket("mon-va.tiktokv.com", 41002, 8))
        withTimeout(5000) { decisionFor("mon-va.tiktokv.com") }
        assertTrue(embargo.status().dnsBlocked >= 2uL)

        embargo.flushHistory()
        val page = embargo.history(HistoryQuery(verdict = Verdict.BLOCK))
        val names = page.records.map { it.name }
        assertTrue(names.containsAll(listOf("log-va.tiktokv.com", "mon-va.tiktokv.com")), names.toString())
        // Cursor paging.
        val p1 = embargo.history(HistoryQuery(limit = 1u))
        assertEquals(1, p1.records.size)
        val p2 = embargo.history(HistoryQuery(limit = 1u, after = p1.next))
        assertFalse(p2.records[0].id == p1.records[0].id)
        // Aggregates, hide filters, export.
        val byOwner = embargo.aggregate(AggregateQuery(groupBy = listOf(Dimension.OWNER)))
        assertTrue(byOwner.any { it.owner?.contains("ByteDance") == true && it.blocked >= 2uL }, byOwner.toString())
        embargo.hide(HiddenEntry.Name("mon-va.tiktokv.com"))
        assertFalse(embargo.history(HistoryQuery()).records.any { it.name == "mon-va.tiktokv.com" })
        assertTrue(embargo.unhide(HiddenEntry.Name("mon-va.tiktokv.com")))
        val csv = String(embargo.exportHistoryBytes(HistoryQuery(), ExportFormat.CSV))
        assertTrue(csv.startsWith("id,") && csv.contains("log-va.tiktokv.com"), csv)
        val out = dir.resolve("export.json")
        assertTrue(embargo.exportHistory(HistoryQuery(), ExportFormat.JSON, out.toString()) >= 2uL)

        embargo.stop()
        var ev2 = withTimeout(5000) { embargo.nextEvent() }
        while (ev2 !is LiveEvent.StateChanged) ev2 = withTimeout(5000) { embargo.nextEvent() }
        assertEquals(TunnelState.STOPPED, ev2.state)
        assertEquals(TunnelState.STOPPED, embargo.status().state)
    }

    class ThrowingSink : PacketSink {
        override fun writePacket(packet: ByteArray) = throw IllegalStateException("packet flow gone")
    }

    @Test
    fun aKotlinExceptionInThePacketSinkIsAnErrorEventNotACrash() = runBlocking {
        embargo.startWithPackets(ThrowingSink(), NoHooks)
        embargo.pushPacket(Packets.dnsQueryPacket("log.tiktokv.com", 41003))
        val error = withTimeout(5000) {
            var ev = embargo.nextEvent()
            while (ev !is LiveEvent.Error) ev = embargo.nextEvent()
            ev
        }
        assertTrue(error.message.contains("packet sink failed"), error.message)
        assertEquals(TunnelState.RUNNING, embargo.status().state)
    }

    @Test
    fun shutdownEndsASuspendedNextEvent() = runBlocking {
        val waiting = async { embargo.nextEvent() }
        delay(200)
        assertFalse(waiting.isCompleted)
        embargo.shutdown()
        assertNull(withTimeout(5000) { waiting.await() })
    }
}
