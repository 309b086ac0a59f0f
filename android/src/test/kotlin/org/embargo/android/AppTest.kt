package org.embargo.android

import android.app.Activity
import android.app.NotificationManager
import android.content.Context
import android.content.Intent
import android.content.pm.ApplicationInfo
import android.content.pm.PackageInfo
import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.drawable.GradientDrawable
import android.net.Uri
import android.os.Looper
import android.view.View
import android.view.ViewGroup
import android.widget.EditText
import android.widget.Switch
import android.widget.TextView
import java.io.File
import java.util.concurrent.Executor
import java.util.concurrent.LinkedBlockingQueue
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.embargo.ffi.ExportFormat
import org.embargo.ffi.LiveEvent
import org.embargo.ffi.PacketSink
import org.embargo.ffi.PlatformHooks
import org.embargo.ffi.Protocol
import org.embargo.ffi.ReasonKind
import org.embargo.ffi.TunnelState
import org.embargo.ffi.Verdict
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertTrue
import org.junit.Before
import org.junit.Test
import org.junit.runner.RunWith
import org.robolectric.Robolectric
import org.robolectric.RobolectricTestRunner
import org.robolectric.RuntimeEnvironment
import org.robolectric.Shadows.shadowOf
import org.robolectric.android.controller.ActivityController
import org.robolectric.annotation.Config
import org.robolectric.annotation.GraphicsMode
import org.robolectric.shadows.ShadowVpnService

/**
 * The app on Robolectric with the real core (the host libembargo_ffi.so through JNA, as on a
 * phone): DNS questions go in as IP packets attributed to an installed app's UID, and the screens
 * read what the core decided and recorded. Screenshots of every screen, light and dark, go to
 * android/docs/screenshots/ (system property embargo.screenshots.dir).
 */
@RunWith(RobolectricTestRunner::class)
@Config(manifest = Config.NONE, sdk = [34], qualifiers = "w360dp-h640dp-xhdpi")
@GraphicsMode(GraphicsMode.Mode.NATIVE)
class AppTest {
    private val context: Context get() = RuntimeEnvironment.getApplication()
    private val core get() = Core.get(context)
    private val sink = Sink()

    class Sink : PacketSink {
        val packets = LinkedBlockingQueue<ByteArray>()
        override fun writePacket(packet: ByteArray) { packets.put(packet) }
    }

    /** Source port of a pushed packet -> UID of the app that "sent" it. */
    private val portUid = java.util.concurrent.ConcurrentHashMap<Int, Int>()
    private var nextPort = 40000

    @Before
    fun setUp() {
        Core.reset()
        Core.io = Executor { it.run() }
        // Allowed names are forwarded to a loopback port nobody answers: nothing leaves the host.
        context.getSharedPreferences("embargo", Context.MODE_PRIVATE).edit()
            .putString(Core.KEY_DNS, "127.0.0.1:9").commit()
        core.owners.uidOf = { _, local, _ -> portUid[local.port] ?: AppOwners.INVALID_UID }
    }

    @After
    fun tearDown() {
        Core.reset()
        ShadowVpnService.reset()
    }

    private fun install(pkg: String, label: String, uid: Int, color: Int, system: Boolean = false) {
        val ai = ApplicationInfo().apply {
            packageName = pkg
            this.uid = uid
            nonLocalizedLabel = label
            flags = if (system) ApplicationInfo.FLAG_SYSTEM else 0
        }
        val pm = shadowOf(context.packageManager)
        pm.installPackage(PackageInfo().apply { packageName = pkg; applicationInfo = ai })
        pm.setPackagesForUid(uid, pkg)
        pm.setApplicationIcon(pkg, GradientDrawable().apply { shape = GradientDrawable.OVAL; setColor(color) })
    }

    private fun installApps() {
        install(TIKTOK, "TikTok", 10123, 0xFFFE2C55.toInt())
        install(WECHAT, "WeChat", 10124, 0xFF07C160.toInt())
        install("org.mozilla.firefox", "Firefox", 10125, 0xFFFF7139.toInt())
        install("org.thoughtcrime.securesms", "Signal", 10126, 0xFF3A76F0.toInt())
        install("com.android.vending", "Play Store", 10127, 0xFF01875F.toInt(), system = true)
    }

    private fun startCore() {
        core.consented = true
        core.embargo.startWithPackets(sink, object : PlatformHooks {
            override fun protect(fd: Int) {}
            override fun appOwner(protocol: Protocol, src: String, dst: String): String? =
                core.owners.ownerOf(protocol, src, dst)
        })
        runBlocking { withTimeout(5000) { core.embargo.nextEvent() } }
    }

    /** Pushes a DNS question for [name] as the app with [uid] and waits for the decision. The
     *  core waits appWaitMs (20 ms) for a flow's app; on a loaded machine the answer can come
     *  after the decision, which then has no app: the question is asked again (as apps retry). */
    private fun ask(name: String, uid: Int): Verdict {
        val app = core.owners.appOfUid(uid)
        repeat(5) {
            val port = nextPort++
            portUid[port] = uid
            assertTrue(core.embargo.pushPacket(Packets.dnsQueryPacket(name, port, port and 0xffff)))
            val ev = runBlocking {
                withTimeout(5000) {
                    var e: LiveEvent?
                    do { e = core.embargo.nextEvent() } while (!(e is LiveEvent.Decision && e.event.name == name))
                    (e as LiveEvent.Decision).event
                }
            }
            if (ev.app == app) return ev.decision.verdict
        }
        error("the core never named $app as the app of $name")
    }

    private fun traffic() {
        installApps()
        startCore()
        for (n in listOf("log.tiktokv.com", "mon.tiktokv.com", "mssdk-va.tiktokv.com", "log.tiktokv.com")) ask(n, 10123)
        for (n in listOf("beacon.qq.com", "h.trace.qq.com", "android.bugly.qq.com")) ask(n, 10124)
        ask("example.org", 10125)
        core.embargo.flushHistory()
    }

    private fun launch(tab: String = MainActivity.TAB_HOME): ActivityController<MainActivity> {
        val c = Robolectric.buildActivity(
            MainActivity::class.java, Intent(context, MainActivity::class.java).putExtra(MainActivity.EXTRA_TAB, tab),
        ).setup()
        idle()
        return c
    }

    private fun idle() = shadowOf(Looper.getMainLooper()).idle()

    private fun texts(v: View): List<String> = when (v) {
        is ViewGroup -> (0 until v.childCount).flatMap { texts(v.getChildAt(it)) }
        is TextView -> listOf(v.text.toString())
        else -> emptyList()
    }

    private fun allText(a: Activity) = texts(a.window.decorView).joinToString("\n")

    private fun find(v: View, pred: (View) -> Boolean): View? {
        if (pred(v)) return v
        if (v is ViewGroup) for (i in 0 until v.childCount) find(v.getChildAt(i), pred)?.let { return it }
        return null
    }

    private fun click(a: Activity, label: String) {
        val v = find(a.window.decorView) { it is TextView && it.text.toString() == label }
        assertNotNull("no '$label' on screen:\n${allText(a)}", v)
        v!!.performClick()
        idle()
    }

    private fun shot(a: Activity, name: String) {
        val dir = File(System.getProperty("embargo.screenshots.dir") ?: "docs/screenshots")
        dir.mkdirs()
        idle()
        val root = a.window.decorView
        val w = root.width.takeIf { it > 0 } ?: 720
        val h = root.height.takeIf { it > 0 } ?: 1280
        val bmp = Bitmap.createBitmap(w, h, Bitmap.Config.ARGB_8888)
        root.draw(Canvas(bmp))
        File(dir, "$name.png").outputStream().use { bmp.compress(Bitmap.CompressFormat.PNG, 100, it) }
    }

    @Test
    fun firstRunExplainsAndAsksForVpnConsent() {
        val consent = Intent("android.net.vpn.action.CONFIRM")
        ShadowVpnService.setPrepareResult(consent)
        val a = launch().get()
        val text = allText(a)
        assertTrue(text, text.contains("Everything stays on the phone"))
        click(a, "Allow and protect")
        val asked = shadowOf(a).nextStartedActivityForResult
        assertNotNull("no consent activity started", asked)
        assertEquals(consent.action, asked.intent.action)
        assertEquals(MainActivity.REQ_VPN, asked.requestCode)
        assertTrue(core.consented)
        // Refused: Home says why nothing is protected.
        shadowOf(a).receiveResult(asked.intent, Activity.RESULT_CANCELED, null)
        idle()
        assertTrue(allText(a), allText(a).contains("needs Android's VPN permission"))
    }

    @Test
    fun theAppsSwitchFlipsThatAppsBlockingInTheCore() {
        installApps()
        core.consented = true
        val a = launch(MainActivity.TAB_APPS).get()
        val row = find(a.window.decorView) { it.tag == TIKTOK }
        assertNotNull("TikTok not listed:\n${allText(a)}", row)
        assertTrue(allText(a).contains("Firefox"))
        assertTrue("system apps are hidden by default", !allText(a).contains("Play Store"))
        assertEquals(Verdict.BLOCK, core.embargo.check("log.tiktokv.com", TIKTOK).verdict)
        val switch = find(row!!) { it is Switch } as Switch
        assertTrue(switch.isChecked)
        switch.performClick()
        idle()
        val after = core.embargo.check("log.tiktokv.com", TIKTOK)
        assertEquals(Verdict.ALLOW, after.verdict)
        assertEquals(ReasonKind.APP_BLOCKING_OFF, after.reason)
        // Other apps keep blocking.
        assertEquals(Verdict.BLOCK, core.embargo.check("log.tiktokv.com", WECHAT).verdict)
    }

    @Test
    fun aBlockedDnsQuestionShowsOnHistoryAndAppDetailWithOwnerAndCountry() {
        installApps()
        startCore()
        assertEquals(Verdict.BLOCK, ask("log.tiktokv.com", 10123))
        core.embargo.flushHistory()
        val record = core.embargo.history(org.embargo.ffi.HistoryQuery(app = TIKTOK)).records.single()
        assertEquals("log.tiktokv.com", record.name)
        assertNotNull(record.owner)
        val c = launch(MainActivity.TAB_HISTORY)
        val history = allText(c.get())
        assertTrue(history, history.contains("log.tiktokv.com"))
        assertTrue(history, history.contains("TikTok"))
        assertTrue(history, history.contains(record.owner!!))
        record.country?.let { assertTrue(history, history.contains(it)) }

        c.get().open(MainActivity.TAB_APPS, TIKTOK)
        idle()
        val detail = allText(c.get())
        assertTrue(detail, detail.contains("log.tiktokv.com"))
        assertTrue(detail, detail.contains(record.owner!!))
        assertTrue(detail, detail.contains("Blocked"))
        record.country?.let { assertTrue(detail, detail.contains(Ui.countryName(it))) }
    }

    @Test
    fun exportWritesARealCsvThroughTheStorageAccessFramework() {
        traffic()
        val a = launch(MainActivity.TAB_HISTORY).get()
        (a.screen as HistoryScreen).exportAs(ExportFormat.CSV)
        val asked = shadowOf(a).nextStartedActivityForResult
        assertEquals(Intent.ACTION_CREATE_DOCUMENT, asked.intent.action)
        assertEquals("text/csv", asked.intent.type)
        val file = File(context.cacheDir, "picked.csv")
        shadowOf(a).receiveResult(asked.intent, Activity.RESULT_OK, Intent().setData(Uri.fromFile(file)))
        idle()
        val csv = file.readText()
        assertTrue(csv, csv.startsWith("id,"))
        assertTrue(csv, csv.contains("log.tiktokv.com"))
        assertTrue(csv, csv.contains(TIKTOK))
    }

    @Test
    fun theNotificationCarriesTodaysCounts() {
        traffic()
        val service = Robolectric.buildService(EmbargoVpnService::class.java).create().get()
        // The service reads the live events from here on (the only reader, as on a phone).
        service.readEvents()
        assertTrue(core.blockedToday() >= 6uL)
        val nm = context.getSystemService(NotificationManager::class.java)
        var title = ""
        var text = ""
        val deadline = System.currentTimeMillis() + 10000
        var pushedAt = 0L
        while (System.currentTimeMillis() < deadline && !text.contains("TikTok → ")) {
            // The core waits appWaitMs (20 ms) for the app of a flow; on a loaded machine the
            // answer can come later and that decision is "Unknown app": ask again.
            if (System.currentTimeMillis() - pushedAt > 1000) {
                val port = nextPort++
                portUid[port] = 10123
                assertTrue(core.embargo.pushPacket(Packets.dnsQueryPacket("log.tiktokv.com", port, port and 0xffff)))
                pushedAt = System.currentTimeMillis()
            }
            Thread.sleep(50)
            core.embargo.flushHistory()
            service.refreshNotification(force = true)
            val n = shadowOf(nm).getNotification(EmbargoVpnService.NOTIFICATION_ID)
            title = n.extras.getCharSequence("android.title").toString()
            text = n.extras.getCharSequence("android.text").toString()
        }
        // Questions still in flight are counted before comparing.
        Thread.sleep(500)
        core.embargo.flushHistory()
        service.refreshNotification(force = true)
        val n = shadowOf(nm).getNotification(EmbargoVpnService.NOTIFICATION_ID)
        title = n.extras.getCharSequence("android.title").toString()
        assertTrue(text, text.contains("TikTok → "))
        assertTrue(title, title.contains("${core.blockedToday()} blocked today"))
        assertTrue(text, text.contains("TikTok → ByteDance"))
        assertEquals(listOf("Pause", "Stop"), n.actions.map { it.title.toString() })
    }

    @Test
    fun revokedByAnotherVpnSaysSoOnHome() {
        core.consented = true
        core.mode = Mode.PROTECT
        val service = Robolectric.buildService(EmbargoVpnService::class.java).create().get()
        service.onRevoke()
        assertEquals(Mode.OFF, core.mode)
        val a = launch().get()
        assertTrue(allText(a), allText(a).contains("Another VPN app took over"))
        assertEquals(TunnelState.STOPPED, core.embargo.status().state)
    }

    @Test
    fun theTunnelMtuSettingReachesTheCoreAndStaysInRange() {
        assertEquals(Core.DEFAULT_MTU.toUInt(), core.config().mtu)
        core.prefs.edit().putInt(Core.KEY_MTU, 9000).commit()
        assertEquals(9000u, core.config().mtu)
        // The real core opens with it (the service gives Builder.setMtu the same config().mtu).
        assertNotNull(core.embargo)
        core.prefs.edit().putInt(Core.KEY_MTU, 100_000).commit()
        assertEquals(65535u, core.config().mtu)
    }

    @Test
    fun anEncryptedDnsServerReachesTheCoreAsAnUpstream() {
        val dot = "tls://dns.quad9.net@9.9.9.9"
        core.prefs.edit().putString(Core.KEY_DNS, dot).commit()
        assertEquals(listOf(dot), core.config().dnsUpstreams)
        // The real core parses it when it opens: a name it cannot check would be refused here.
        assertNotNull(core.embargo)
        core.prefs.edit().putString(Core.KEY_DNS, "127.0.0.1:9").commit()
        assertEquals(emptyList<String>(), core.config().dnsUpstreams)
        assertEquals("127.0.0.1:9", core.config().dnsUpstream)
    }

    @Test
    fun rotationKeepsTheScreenAndWhatWasTyped() {
        installApps()
        core.consented = true
        val c = launch(MainActivity.TAB_APPS)
        val apps = c.get().screen as AppsScreen
        apps.search.setText("tik")
        idle()
        assertTrue(allText(c.get()).contains("TikTok"))
        assertTrue(!allText(c.get()).contains("Firefox"))
        RuntimeEnvironment.setQualifiers("+land")
        c.recreate()
        idle()
        val again = c.get()
        assertEquals(MainActivity.TAB_APPS, again.tab)
        val box = find(again.window.decorView) { it is EditText && it.text.toString() == "tik" }
        assertNotNull("search text lost:\n${allText(again)}", box)
        assertTrue(!allText(again).contains("Firefox"))
    }

    @Test
    fun appDetailAllowsAnOwnerAndPausesTheAppInTheCore() {
        traffic()
        val c = launch(MainActivity.TAB_APPS)
        c.get().open(MainActivity.TAB_APPS, TIKTOK)
        idle()
        assertEquals(Verdict.BLOCK, core.embargo.check("log.tiktokv.com", TIKTOK).verdict)
        // The first "Always allow" is the owner's (ByteDance), above the countries and names.
        click(c.get(), "Always allow")
        val allowed = core.embargo.check("log.tiktokv.com", TIKTOK)
        assertEquals(Verdict.ALLOW, allowed.verdict)
        assertEquals(ReasonKind.APP_OVERRIDE, allowed.reason)
        assertTrue(allText(c.get()), allText(c.get()).contains("✓ Always allowed"))
        click(c.get(), "✓ Always allowed") // tapped again: the override goes
        assertEquals(Verdict.BLOCK, core.embargo.check("log.tiktokv.com", TIKTOK).verdict)
        click(c.get(), "Pause for 1 hour")
        assertEquals(Verdict.ALLOW, core.embargo.check("log.tiktokv.com", TIKTOK).verdict)
        assertTrue(allText(c.get()), allText(c.get()).contains("Paused until"))
        // An hour later the pause ends and blocking is back.
        core.endPauses(System.currentTimeMillis() + Core.HOUR_MS + 1)
        assertEquals(Verdict.BLOCK, core.embargo.check("log.tiktokv.com", TIKTOK).verdict)
    }

    @Test
    fun historyLoadsTheNextPageWithTheCursorAsTheUserScrolls() {
        installApps()
        startCore()
        val total = HistoryScreen.PAGE.toInt() + 12
        for (i in 0 until total) assertEquals(Verdict.BLOCK, ask("x$i.log.tiktokv.com", 10123))
        core.embargo.flushHistory()
        val a = launch(MainActivity.TAB_HISTORY).get()
        val history = a.screen as HistoryScreen
        assertEquals(HistoryScreen.PAGE.toInt(), history.records.size)
        // Newest first.
        assertEquals("x${total - 1}.log.tiktokv.com", history.records.first().name)
        history.list.setSelection(history.records.size - 1)
        idle()
        history.loadMore()
        idle()
        // Every record once (a question asked again because its app came late is a record too).
        val rows = core.embargo.historyStats().rows.toInt()
        assertTrue(rows >= total)
        assertEquals(rows, history.records.size)
        assertEquals(rows, history.records.map { it.id }.toSet().size)
        assertTrue(allText(a), allText(a).contains("$rows shown"))
    }

    @Test
    fun clearDeletesTheHistoryAndKeepsTheRules() {
        traffic()
        core.embargo.setAppBlocking(WECHAT, false)
        val a = launch(MainActivity.TAB_HISTORY).get()
        assertTrue(allText(a).contains("log.tiktokv.com"))
        (a.screen as HistoryScreen).clear()
        idle()
        assertTrue(core.embargo.history(org.embargo.ffi.HistoryQuery(includeHidden = true)).records.isEmpty())
        assertTrue(allText(a), allText(a).contains("Nothing recorded for these filters."))
        assertEquals(Verdict.ALLOW, core.embargo.check("beacon.qq.com", WECHAT).verdict)
    }

    @Test
    fun screenshotsOfEveryScreenLightAndDark() {
        traffic()
        core.mode = Mode.PROTECT
        core.alwaysOn = true
        for (theme in listOf("light", "dark")) {
            if (theme == "dark") RuntimeEnvironment.setQualifiers("+night")
            core.consented = false
            val c = launch()
            shot(c.get(), "home-first-run-$theme")
            core.consented = true
            c.get().open(MainActivity.TAB_HOME)
            shot(c.get(), "home-$theme")
            c.get().open(MainActivity.TAB_APPS)
            shot(c.get(), "apps-$theme")
            c.get().open(MainActivity.TAB_APPS, TIKTOK)
            shot(c.get(), "app-detail-$theme")
            c.get().open(MainActivity.TAB_HISTORY)
            shot(c.get(), "history-$theme")
            c.get().open(MainActivity.TAB_LISTS)
            shot(c.get(), "lists-$theme")
            c.pause().stop().destroy()
        }
        // Readable at a large font scale (Settings > Display > Font size, largest before 14).
        RuntimeEnvironment.setQualifiers("+notnight")
        RuntimeEnvironment.setFontScale(1.3f)
        val big = launch()
        shot(big.get(), "home-large-font-light")
        big.get().open(MainActivity.TAB_HISTORY)
        shot(big.get(), "history-large-font-light")
    }

    companion object {
        const val TIKTOK = "com.zhiliaoapp.musically"
        const val WECHAT = "com.tencent.mm"
    }
}
