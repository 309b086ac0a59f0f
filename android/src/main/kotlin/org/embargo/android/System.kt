package org.embargo.android

import android.content.BroadcastReceiver
import android.content.ComponentName
import android.content.Context
import android.content.Intent
import android.net.ConnectivityManager
import android.net.VpnService
import android.os.PowerManager
import android.service.quicksettings.Tile
import android.service.quicksettings.TileService

/** Starts protection after a reboot and after an app update, when it was on before. Always-on
 *  VPN does the same by itself; this covers phones where the user did not turn that on. */
class BootReceiver : BroadcastReceiver() {
    override fun onReceive(context: Context, intent: Intent) {
        if (intent.action != Intent.ACTION_BOOT_COMPLETED && intent.action != Intent.ACTION_MY_PACKAGE_REPLACED) return
        val core = Core.get(context)
        if (core.mode == Mode.PROTECT && VpnService.prepare(context) == null) EmbargoVpnService.start(context)
    }
}

/** The Quick Settings tile: one tap protects or stops. */
class ProtectTileService : TileService() {
    override fun onStartListening() {
        val tile = qsTile ?: return
        val on = Core.get(this).mode == Mode.PROTECT
        tile.state = if (on) Tile.STATE_ACTIVE else Tile.STATE_INACTIVE
        tile.label = "Embargo"
        tile.subtitle = when (Core.get(this).mode) {
            Mode.PROTECT -> "Protecting"
            Mode.PAUSED -> "Paused"
            Mode.OFF -> "Off"
        }
        tile.updateTile()
    }

    override fun onClick() {
        val core = Core.get(this)
        when {
            core.mode == Mode.PROTECT -> EmbargoVpnService.stop(this, Mode.OFF)
            // Consent needs an activity; open the app instead of failing silently.
            VpnService.prepare(this) != null -> {
                val open = Intent(this, MainActivity::class.java).addFlags(Intent.FLAG_ACTIVITY_NEW_TASK)
                if (android.os.Build.VERSION.SDK_INT >= 34) {
                    startActivityAndCollapse(
                        android.app.PendingIntent.getActivity(this, 0, open, android.app.PendingIntent.FLAG_IMMUTABLE),
                    )
                } else {
                    @Suppress("DEPRECATION") startActivityAndCollapse(open)
                }
            }
            else -> { core.mode = Mode.PROTECT; EmbargoVpnService.start(this) }
        }
        onStartListening()
    }
}

object TileState {
    fun request(context: Context) {
        runCatching { TileService.requestListeningState(context, ComponentName(context, ProtectTileService::class.java)) }
    }
}

/** What can make protection incomplete, in words for Home. */
object Warnings {
    fun current(context: Context): List<String> {
        val core = Core.get(context)
        val out = mutableListOf<String>()
        core.stopReason?.let { out += it }
        privateDns(context)?.let { server ->
            out += "Private DNS is set to $server. Android sends DNS questions there directly, " +
                "around Embargo, so blocking by name misses them. Set Private DNS to Automatic or Off " +
                "in Settings > Network > Private DNS."
        }
        if (core.mode == Mode.PROTECT && !core.alwaysOn) {
            out += "Always-on VPN is off: Android may stop Embargo to save memory. Turn it on in " +
                "Settings > Network > VPN > Embargo."
        }
        val pm = context.getSystemService(PowerManager::class.java)
        if (pm != null && !pm.isIgnoringBatteryOptimizations(context.packageName)) {
            out += "Battery optimisation may pause Embargo in the background. Allow it to run " +
                "unrestricted in Settings > Apps > Embargo > Battery."
        }
        val cm = context.getSystemService(ConnectivityManager::class.java)
        if (cm != null && cm.activeNetwork == null) out += "No network right now: nothing to protect until one comes back."
        return out
    }

    /** The strict Private DNS host name, when one is active (it bypasses the tunnel's DNS). */
    fun privateDns(context: Context): String? {
        val cm = context.getSystemService(ConnectivityManager::class.java) ?: return null
        val lp = cm.activeNetwork?.let { cm.getLinkProperties(it) } ?: return null
        return if (lp.isPrivateDnsActive) lp.privateDnsServerName else null
    }
}
