package org.embargo.android

import android.app.Notification
import android.app.NotificationChannel
import android.app.NotificationManager
import android.app.PendingIntent
import android.content.Context
import android.content.Intent
import android.content.pm.ServiceInfo
import android.net.ConnectivityManager
import android.net.Network
import android.net.VpnService
import android.os.Build
import java.net.InetAddress
import kotlinx.coroutines.runBlocking
import org.embargo.ffi.EmbargoException
import org.embargo.ffi.HookException
import org.embargo.ffi.LiveEvent
import org.embargo.ffi.PlatformHooks
import org.embargo.ffi.Protocol
import org.embargo.ffi.TunnelState
import org.embargo.ffi.Verdict

/**
 * The tunnel: every app's traffic comes into the descriptor `establish()` returns, and the Rust
 * core owns it from there (parse, decide, relay through protected sockets). This class only
 * configures the interface, answers the core's two questions (protect a socket, which app owns a
 * flow), keeps the foreground notification current and reacts to the system stopping it.
 */
class EmbargoVpnService : VpnService() {
    private lateinit var core: Core
    private var events: Thread? = null
    private var networkCallback: ConnectivityManager.NetworkCallback? = null
    @Volatile private var lastBlocked: String? = null
    @Volatile private var lastNotified = 0L
    @Volatile var noNetwork = false
        private set

    override fun onCreate() {
        super.onCreate()
        core = Core.get(this)
        createChannel(this)
    }

    override fun onStartCommand(intent: Intent?, flags: Int, startId: Int): Int {
        when (intent?.action) {
            ACTION_STOP -> { stopTunnel(Mode.OFF, null); return START_NOT_STICKY }
            ACTION_PAUSE -> { stopTunnel(Mode.PAUSED, null); return START_NOT_STICKY }
        }
        // Always-on VPN starts us with the plain VpnService intent (action null or
        // SERVICE_INTERFACE): that is a request to protect.
        goForeground()
        startTunnel()
        return START_STICKY
    }

    private fun goForeground() {
        val n = notification()
        if (Build.VERSION.SDK_INT >= 34) {
            startForeground(NOTIFICATION_ID, n, ServiceInfo.FOREGROUND_SERVICE_TYPE_SPECIAL_USE)
        } else {
            startForeground(NOTIFICATION_ID, n)
        }
    }

    private fun startTunnel() {
        if (core.embargo.status().state == TunnelState.RUNNING) return
        core.reopenIfSettingsChanged()
        if (prepare(this) != null) {
            // Consent withdrawn or never given: only the activity can ask again.
            stopTunnel(Mode.OFF, "Android has not allowed Embargo to run a VPN: open Embargo to allow it.")
            return
        }
        val tun = Builder()
            .setSession("Embargo")
            .setMtu(core.config().mtu.toInt())
            .addAddress(InetAddress.getByName(TUN_V4), 32)
            .addAddress(InetAddress.getByName(TUN_V6), 128)
            .addRoute(InetAddress.getByName("0.0.0.0"), 0)
            .addRoute(InetAddress.getByName("::"), 0)
            // DNS into the tunnel, where the core answers or forwards it.
            .addDnsServer(InetAddress.getByName(DNS_V4))
            .addDnsServer(InetAddress.getByName(DNS_V6))
            .setBlocking(true)
            .setMetered(false)
            .also { b -> runCatching { b.addDisallowedApplication(packageName) } }
            .establish()
        if (tun == null) {
            stopTunnel(Mode.OFF, "Android refused to start the VPN (another app may hold always-on VPN).")
            return
        }
        core.alwaysOn = Build.VERSION.SDK_INT >= 29 && isAlwaysOn
        core.stopReason = null
        core.mode = Mode.PROTECT
        try {
            core.embargo.start(tun.detachFd(), hooks)
        } catch (e: EmbargoException) {
            stopTunnel(Mode.OFF, "The tunnel did not start: ${e.message}")
            return
        }
        watchNetwork()
        readEvents()
        refreshNotification(force = true)
    }

    /** The core's questions, asked from its threads. */
    val hooks = object : PlatformHooks {
        override fun protect(fd: Int) {
            if (!this@EmbargoVpnService.protect(fd)) throw HookException.Failed("protect($fd) refused")
        }
        override fun appOwner(protocol: Protocol, src: String, dst: String): String? =
            core.owners.ownerOf(protocol, src, dst)
    }

    /** Live events: keep "last blocked app -> owner" for the notification. */
    internal fun readEvents() {
        if (events?.isAlive == true) return
        events = Thread({
            runBlocking {
                while (true) {
                    val ev = core.embargo.nextEvent() ?: break
                    if (ev is LiveEvent.Decision && ev.event.decision.verdict == Verdict.BLOCK) {
                        val owner = ev.event.decision.owner?.value ?: ev.event.name ?: ev.event.addr
                        lastBlocked = core.owners.label(ev.event.app) + " → " + owner
                        refreshNotification()
                    }
                    if (ev is LiveEvent.StateChanged && ev.state != TunnelState.RUNNING) break
                }
            }
        }, "embargo-events").apply { isDaemon = true; start() }
    }

    private fun watchNetwork() {
        val cm = getSystemService(ConnectivityManager::class.java) ?: return
        val cb = object : ConnectivityManager.NetworkCallback() {
            override fun onAvailable(network: Network) { noNetwork = false; refreshNotification(force = true) }
            override fun onLost(network: Network) { noNetwork = true; refreshNotification(force = true) }
        }
        runCatching { cm.registerDefaultNetworkCallback(cb); networkCallback = cb }
    }

    /** Stops the tunnel; [reason] is what Home shows when the user did not ask for it. */
    fun stopTunnel(mode: Mode, reason: String?) {
        core.mode = mode
        core.stopReason = reason
        runCatching { core.embargo.stop() }
        networkCallback?.let { cb ->
            runCatching { getSystemService(ConnectivityManager::class.java)?.unregisterNetworkCallback(cb) }
        }
        networkCallback = null
        stopForeground(STOP_FOREGROUND_REMOVE)
        stopSelf()
        TileState.request(this)
    }

    /** Another VPN took over (or the user revoked it in Settings): say so on Home. */
    override fun onRevoke() {
        stopTunnel(Mode.OFF, "Another VPN app took over, so Embargo stopped. Switch it on again to protect.")
    }

    override fun onDestroy() {
        runCatching { core.embargo.stop() }
        super.onDestroy()
    }

    /** Re-posts the notification with current counts, at most once a second unless [force]. */
    fun refreshNotification(force: Boolean = false) {
        val now = System.currentTimeMillis()
        if (!force && now - lastNotified < 1000) return
        lastNotified = now
        getSystemService(NotificationManager::class.java)?.notify(NOTIFICATION_ID, notification())
    }

    fun notification(): Notification {
        val blocked = runCatching { core.blockedToday() }.getOrDefault(0uL)
        val title = when {
            noNetwork -> "Embargo: waiting for a network"
            else -> "Embargo is protecting · $blocked blocked today"
        }
        val text = lastBlocked?.let { "Last blocked: $it" } ?: "Nothing blocked yet"
        val open = PendingIntent.getActivity(
            this, 0, Intent(this, MainActivity::class.java), PendingIntent.FLAG_IMMUTABLE,
        )
        fun action(label: String, action: String) = Notification.Action.Builder(
            null, label,
            PendingIntent.getService(
                this, action.hashCode(), Intent(this, EmbargoVpnService::class.java).setAction(action),
                PendingIntent.FLAG_IMMUTABLE,
            ),
        ).build()
        return Notification.Builder(this, CHANNEL)
            .setSmallIcon(android.R.drawable.ic_lock_lock)
            .setContentTitle(title)
            .setContentText(text)
            .setContentIntent(open)
            .setOngoing(true)
            .setOnlyAlertOnce(true)
            .addAction(action("Pause", ACTION_PAUSE))
            .addAction(action("Stop", ACTION_STOP))
            .build()
    }

    companion object {
        const val ACTION_START = "org.embargo.android.START"
        const val ACTION_STOP = "org.embargo.android.STOP"
        const val ACTION_PAUSE = "org.embargo.android.PAUSE"
        const val CHANNEL = "status"
        const val NOTIFICATION_ID = 1
        // The phone's side of the tunnel and the DNS server the core answers as.
        const val TUN_V4 = "10.111.0.2"
        const val DNS_V4 = "10.111.0.1"
        const val TUN_V6 = "fd00:6d62:6172::2"
        const val DNS_V6 = "fd00:6d62:6172::1"

        fun createChannel(context: Context) {
            val ch = NotificationChannel(CHANNEL, "Protection status", NotificationManager.IMPORTANCE_LOW)
            ch.description = "Shows that Embargo is running and what it blocked today"
            context.getSystemService(NotificationManager::class.java)?.createNotificationChannel(ch)
        }

        /** Starts protection (consent must already be given: see [VpnService.prepare]). */
        fun start(context: Context) {
            context.startForegroundService(
                Intent(context, EmbargoVpnService::class.java).setAction(ACTION_START),
            )
        }

        fun stop(context: Context, mode: Mode) {
            Core.get(context).mode = mode
            context.startService(
                Intent(context, EmbargoVpnService::class.java)
                    .setAction(if (mode == Mode.PAUSED) ACTION_PAUSE else ACTION_STOP),
            )
        }
    }
}
