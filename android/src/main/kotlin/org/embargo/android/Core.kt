package org.embargo.android

import android.content.Context
import android.content.SharedPreferences
import android.os.Handler
import android.os.Looper
import java.util.concurrent.Executor
import java.util.concurrent.Executors
import org.embargo.ffi.AggregateQuery
import org.embargo.ffi.Dimension
import org.embargo.ffi.Embargo
import org.embargo.ffi.EmbargoConfig

/** What the user asked for with the one switch on Home. */
enum class Mode { PROTECT, PAUSED, OFF }

/**
 * The one `Embargo` object of the process and the app's few preferences. Screens, the VPN
 * service, the tile and the boot receiver all go through [Core.get]; the core itself keeps rules
 * and history in `filesDir/embargo`, so nothing here duplicates what it stores.
 */
class Core private constructor(val context: Context) {
    val prefs: SharedPreferences = context.getSharedPreferences("embargo", Context.MODE_PRIVATE)
    val owners = AppOwners(context)

    private var opened: Embargo? = null
    private var openedWith: EmbargoConfig? = null

    /** Opened on first use: loading lists and the history database takes disk time. */
    val embargo: Embargo
        get() = synchronized(this) {
            opened ?: config().let { c -> Embargo(c, storageDir.path).also { opened = it; openedWith = c } }
        }

    /** The DNS server and retention are fixed when the core opens: the service calls this
     *  before starting the tunnel so a changed setting applies from that start on. */
    fun reopenIfSettingsChanged() = synchronized(this) {
        if (opened != null && openedWith != config()) close()
    }

    val storageDir get() = context.filesDir.resolve("embargo")

    /** Deletes the whole history: the core is closed, its database removed, and the core
     *  opened again on next use (the caller restarts the tunnel if it was running). */
    fun clearHistory() = synchronized(this) {
        opened?.let { runCatching { it.shutdown() }; it.close() }
        opened = null
        for (suffix in listOf("", "-wal", "-shm", "-journal")) storageDir.resolve("history.db$suffix").delete()
    }

    /** Closes the core (tests, and [reset]). */
    fun close() = synchronized(this) {
        opened?.let { runCatching { it.shutdown() }; it.close() }
        opened = null
    }

    fun config(): EmbargoConfig {
        val dns = prefs.getString(KEY_DNS, DEFAULT_DNS) ?: DEFAULT_DNS
        val days = prefs.getInt(KEY_RETENTION, 30).toUInt()
        // One value for both ends: the service's Builder.setMtu and the core's packets.
        val mtu = prefs.getInt(KEY_MTU, DEFAULT_MTU).coerceIn(MIN_MTU, MAX_MTU).toUInt()
        // An encrypted upstream replaces the plain one: the core checks its name against the
        // server's certificate, and no question leaves in plaintext.
        return if (isEncryptedDns(dns)) EmbargoConfig(dnsUpstreams = listOf(dns), historyRetentionDays = days, mtu = mtu)
        else EmbargoConfig(dnsUpstream = dns, historyRetentionDays = days, mtu = mtu)
    }

    var mode: Mode
        get() = Mode.valueOf(prefs.getString(KEY_MODE, Mode.OFF.name) ?: Mode.OFF.name)
        set(value) { prefs.edit().putString(KEY_MODE, value.name).apply() }

    /** The user read the first-run explanation and agreed to start the VPN. */
    var consented: Boolean
        get() = prefs.getBoolean(KEY_CONSENT, false)
        set(value) { prefs.edit().putBoolean(KEY_CONSENT, value).apply() }

    /** Why protection stopped without the user asking (another VPN, no consent), for Home. */
    var stopReason: String?
        get() = prefs.getString(KEY_STOP_REASON, null)
        set(value) { prefs.edit().putString(KEY_STOP_REASON, value).apply() }

    /** Last seen by the running service (`VpnService.isAlwaysOn`), for Home's warning. */
    var alwaysOn: Boolean
        get() = prefs.getBoolean(KEY_ALWAYS_ON, false)
        set(value) { prefs.edit().putBoolean(KEY_ALWAYS_ON, value).apply() }

    /** Apps paused for an hour: package -> end of the pause (ms). The core's per-app switch is
     *  what actually pauses; this only remembers when to switch it back. */
    fun pausedUntil(app: String): Long = prefs.getLong("pause:$app", 0)

    fun pauseApp(app: String, forMs: Long = HOUR_MS) {
        prefs.edit().putLong("pause:$app", System.currentTimeMillis() + forMs).apply()
        embargo.setAppBlocking(app, false)
    }

    /** Ends the pauses that are over (called when a screen opens and by the service's tick). */
    fun endPauses(now: Long = System.currentTimeMillis()) {
        for ((key, value) in prefs.all) {
            if (key.startsWith("pause:") && value is Long && value <= now) {
                embargo.resetAppBlocking(key.removePrefix("pause:"))
                prefs.edit().remove(key).apply()
            }
        }
    }

    /** Counts of today (local midnight on), blocked, grouped by [dimension]. */
    fun today(dimension: Dimension) =
        embargo.aggregate(AggregateQuery(sinceMs = startOfToday(), groupBy = listOf(dimension)))
            .filter { it.blocked > 0u }
            .sortedByDescending { it.blocked }

    fun blockedToday(): ULong =
        embargo.aggregate(AggregateQuery(sinceMs = startOfToday())).sumOf { it.blocked }

    companion object {
        /** `tls://NAME@ADDR[:PORT]` (DNS over TLS) or `https://NAME[@ADDR]/PATH` (DNS over HTTPS). */
        fun isEncryptedDns(v: String) = v.startsWith("tls://") || v.startsWith("https://")
        const val HOUR_MS = 3_600_000L
        const val DEFAULT_DNS = "9.9.9.9:53"
        const val KEY_MODE = "mode"
        const val KEY_CONSENT = "consent"
        const val KEY_STOP_REASON = "stop_reason"
        const val KEY_ALWAYS_ON = "always_on"
        const val KEY_DNS = "dns_upstream"
        const val KEY_RETENTION = "retention_days"
        const val KEY_MTU = "tunnel_mtu"
        /** The core's default (`EmbargoConfig.mtu`); IPv6 needs at least 1280. */
        val DEFAULT_MTU = EmbargoConfig().mtu.toInt()
        const val MIN_MTU = 1280
        const val MAX_MTU = 65535

        @Volatile private var instance: Core? = null

        fun get(context: Context): Core =
            instance ?: synchronized(this) {
                instance ?: Core(context.applicationContext).also { instance = it }
            }

        /** Tests: closes the core so the next [get] opens a fresh one. */
        fun reset() = synchronized(this) {
            instance?.close()
            instance = null
        }

        /** Disk and network work off the main thread; tests make it run in place. */
        @Volatile var io: Executor = Executors.newSingleThreadExecutor { r -> Thread(r, "embargo-io") }
        private val main = Handler(Looper.getMainLooper())

        /** Runs [work] on [io], then [done] with its result on the main thread. */
        fun <T> background(work: () -> T, done: (Result<T>) -> Unit) {
            io.execute {
                val result = runCatching(work)
                if (Looper.myLooper() == Looper.getMainLooper()) done(result) else main.post { done(result) }
            }
        }

        fun startOfToday(now: Long = System.currentTimeMillis()): Long {
            val c = java.util.Calendar.getInstance()
            c.timeInMillis = now
            c.set(java.util.Calendar.HOUR_OF_DAY, 0)
            c.set(java.util.Calendar.MINUTE, 0)
            c.set(java.util.Calendar.SECOND, 0)
            c.set(java.util.Calendar.MILLISECOND, 0)
            return c.timeInMillis
        }
    }
}
