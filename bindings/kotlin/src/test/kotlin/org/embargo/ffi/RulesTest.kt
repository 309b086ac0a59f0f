package org.embargo.ffi

import java.nio.file.Files
import java.nio.file.Path
import org.junit.jupiter.api.AfterEach
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeEach
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.assertThrows
import org.junit.jupiter.api.io.TempDir

/** What the app's settings screens do: lists, check, per-app rules, allowlist, errors. */
class RulesTest {
    @TempDir
    lateinit var dir: Path
    private lateinit var embargo: Embargo

    @BeforeEach
    fun open() {
        embargo = Embargo(EmbargoConfig(), dir.resolve("state").toString())
    }

    @AfterEach
    fun close() {
        embargo.shutdown()
        embargo.close()
    }

    @Test
    fun builtinListBlocksByteDanceTelemetryAndExplainsWhy() {
        val r = embargo.check("log-va.tiktokv.com")
        assertEquals(Verdict.BLOCK, r.verdict)
        assertEquals(ReasonKind.NAME_RULE, r.reason)
        assertEquals("builtin", r.rule?.list)
        assertTrue(r.rule!!.line > 0u)
        assertTrue(r.owner!!.value.contains("ByteDance"), r.owner.toString())
        assertEquals(Verdict.ALLOW, embargo.check("example.org").verdict)
    }

    @Test
    fun embargoRulesBlockTikToksOwnTelemetryAndTheLevelIsASetting() {
        val tiktok = "com.zhiliaoapp.musically"
        val r = embargo.check("log.tiktokv.com", tiktok)
        assertEquals(Verdict.BLOCK, r.verdict)
        assertEquals(RuleIntent.EMBARGO, r.intent)
        assertEquals(EmbargoLevel.TELEMETRY, embargo.embargoLevel())
        assertEquals(Verdict.ALLOW, embargo.check("71.18.0.1", tiktok).verdict)
        embargo.setEmbargoLevel(EmbargoLevel.FULL)
        assertEquals(Verdict.BLOCK, embargo.check("71.18.0.1", tiktok).verdict)
    }

    @Test
    fun loadAListAndCheckADecision() {
        val text = "0.0.0.0 tracker.test\n0.0.0.0 localhost\nthis is not a hosts line !!\n"
        val report = embargo.setList("mine", text.toByteArray(), ListFormat.HOSTS)
        assertEquals(1uL, report.accepted)
        assertEquals(1uL, report.errorCount)
        assertEquals(3u, report.errors[0].line)
        assertEquals(1uL, report.skipped.first { it.reason == SkipKind.LOCAL_NAME }.count)
        val r = embargo.check("tracker.test")
        assertEquals(Verdict.BLOCK, r.verdict)
        assertEquals("mine", r.rule?.list)
        assertEquals(1u, r.rule?.line)
        // A file, format detected from its name.
        val file = dir.resolve("extra.rules")
        Files.writeString(file, "other.test\n")
        val rep2 = embargo.setListFromFile("extra", file.toString(), ListFormat.EMBARGO)
        assertEquals(1uL, rep2.accepted)
        assertEquals(Verdict.BLOCK, embargo.check("other.test").verdict)
        assertEquals(listOf("mine", "extra"), embargo.lists().map { it.name })
        embargo.setListEnabled("mine", false)
        assertEquals(Verdict.ALLOW, embargo.check("tracker.test").verdict)
        assertTrue(embargo.removeList("extra"))
        assertEquals(Verdict.ALLOW, embargo.check("other.test").verdict)
    }

    @Test
    fun toggleAnAppOverridesAllowlistAndDefaultsPersist() {
        val app = "com.example.game"
        assertEquals(Verdict.BLOCK, embargo.check("log.tiktokv.com", app).verdict)
        embargo.setAppBlocking(app, false)
        val off = embargo.check("log.tiktokv.com", app)
        assertEquals(Verdict.ALLOW, off.verdict)
        assertEquals(ReasonKind.APP_BLOCKING_OFF, off.reason)
        assertEquals(false, embargo.appSettings(app).blockingEffective)
        embargo.setAppBlocking(app, true)
        embargo.setAppOverride(app, RuleTarget.Owner("ByteDance"), Verdict.ALLOW)
        assertEquals(ReasonKind.APP_OVERRIDE, embargo.check("log.tiktokv.com", app).reason)
        embargo.allow(RuleTarget.Name("mon.tiktokv.com"))
        assertEquals(ReasonKind.ALLOWLISTED, embargo.check("mon.tiktokv.com").reason)
        embargo.setAppDefaults(AppDefaults(newAppBlocking = false, systemAppBlocking = true))
        assertEquals(Verdict.ALLOW, embargo.check("log.tiktokv.com", "com.brand.new").verdict)
        embargo.shutdown()
        embargo.close()
        // Reopen over the same storage: everything is still there.
        embargo = Embargo(EmbargoConfig(), dir.resolve("state").toString())
        val s = embargo.appSettings(app)
        assertEquals(true, s.blocking)
        assertEquals(listOf(AppOverride(RuleTarget.Owner("ByteDance"), Verdict.ALLOW)), s.overrides)
        assertEquals(listOf<RuleTarget>(RuleTarget.Name("mon.tiktokv.com")), embargo.allowlist())
        assertEquals(AppDefaults(false, true), embargo.appDefaults())
        assertThrows<EmbargoException.InvalidInput> {
            embargo.allow(RuleTarget.Country("China"))
        }
    }

    @Test
    fun aPanicInsideTheLibraryIsAnErrorNotACrash() {
        val e = assertThrows<EmbargoException.Internal> { embargo.debugPanic() }
        assertTrue(e.message!!.contains("deliberate panic"), e.message)
        // Still usable afterwards.
        assertEquals(Verdict.BLOCK, embargo.check("log.tiktokv.com").verdict)
    }

    class ThrowingHooks(private val error: Exception) : PlatformHooks {
        override fun protect(fd: Int) = throw error
        override fun appOwner(protocol: Protocol, src: String, dst: String): String? = null
    }

    @Test
    fun aKotlinExceptionInAHookBecomesAnErrorNotACrash() {
        val declared = assertThrows<EmbargoException.Hook> {
            embargo.checkHooks(ThrowingHooks(HookException.Failed("protect refused")))
        }
        assertTrue(declared.message!!.contains("protect refused"), declared.message)
        // An exception the hook never declared (a plain bug in the app).
        assertThrows<EmbargoException.Hook> {
            embargo.checkHooks(ThrowingHooks(IllegalStateException("a bug in the app")))
        }
        assertNotNull(libraryVersion())
    }

    @Test
    fun badInputIsAnErrorWithAMessage() {
        val e = assertThrows<EmbargoException.InvalidInput> { embargo.check("not a name") }
        assertTrue(e.message!!.contains("not a name"))
        assertThrows<EmbargoException.List> { embargo.setListFromFile("x", "/nonexistent/list.txt") }
        assertNull(embargo.tryNextEvent())
    }

    class ListSink : LogSink {
        val lines = java.util.concurrent.CopyOnWriteArrayList<Triple<LogLevel, String, String>>()
        override fun log(level: LogLevel, target: String, message: String) {
            lines.add(Triple(level, target, message))
        }
    }

    @Test
    fun coreLogLinesReachTheLogSinkAndAThrowingSinkIsHarmless() {
        val sink = ListSink()
        assertTrue(setLogSink(sink, LogLevel.INFO))
        assertThrows<EmbargoException.Internal> { embargo.debugPanic() }
        val error = sink.lines.first { it.first == LogLevel.ERROR }
        assertTrue(error.second.startsWith("embargo_ffi") && error.third.contains("deliberate panic"), error.toString())
        setLogSink(object : LogSink {
            override fun log(level: LogLevel, target: String, message: String) = throw IllegalStateException("logcat gone")
        }, LogLevel.DEBUG)
        assertThrows<EmbargoException.Internal> { embargo.debugPanic() }
        assertEquals(Verdict.BLOCK, embargo.check("log.tiktokv.com").verdict)
        setLogSink(sink, LogLevel.WARN)
    }
}
