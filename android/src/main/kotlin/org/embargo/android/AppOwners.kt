package org.embargo.android

import android.content.Context
import android.content.pm.ApplicationInfo
import android.content.pm.PackageManager
import android.graphics.drawable.Drawable
import android.net.ConnectivityManager
import android.system.OsConstants
import java.net.InetAddress
import java.net.InetSocketAddress
import org.embargo.ffi.Protocol

/**
 * Which app a flow belongs to, and how to show an app. The core names apps by the string this
 * returns: the package name for an app with its own UID; for UIDs shared by several packages
 * `shared:<sharedUserId>`; for the system UIDs that have no package of their own a fixed name
 * ([SYSTEM_UIDS]). The per-app rules of the core are keyed by the same strings.
 */
class AppOwners(private val context: Context) {
    private val pm: PackageManager = context.packageManager

    /** UID of a flow; the platform's answer by default (`getConnectionOwnerUid`, API 29+,
     *  allowed for the active VPN app only). Replaceable for the packet-level tests. */
    @Volatile var uidOf: (protocol: Int, local: InetSocketAddress, remote: InetSocketAddress) -> Int =
        { protocol, local, remote ->
            val cm = context.getSystemService(ConnectivityManager::class.java)
            cm.getConnectionOwnerUid(protocol, local, remote)
        }

    /** The app id of the flow `src -> dst` ("ip:port", IPv6 in brackets), or null. */
    fun ownerOf(protocol: Protocol, src: String, dst: String): String? {
        val proto = when (protocol) {
            Protocol.TCP -> OsConstants.IPPROTO_TCP
            Protocol.UDP, Protocol.DNS -> OsConstants.IPPROTO_UDP
            Protocol.ICMP -> return null
        }
        val uid = runCatching { uidOf(proto, socket(src), socket(dst)) }.getOrDefault(INVALID_UID)
        return if (uid == INVALID_UID) null else appOfUid(uid)
    }

    /** The app id of a UID (see the class comment). */
    fun appOfUid(uid: Int): String? {
        SYSTEM_UIDS[uid]?.let { return it.first }
        val packages = pm.getPackagesForUid(uid) ?: return null
        return when (packages.size) {
            0 -> null
            1 -> packages[0]
            else -> "shared:" + (pm.getNameForUid(uid)?.substringBefore(':') ?: uid.toString())
        }
    }

    /** What a person reads for an app id. */
    fun label(app: String?): String {
        if (app == null) return "Unknown app"
        SYSTEM_UIDS.values.firstOrNull { it.first == app }?.let { return it.second }
        if (app.startsWith("shared:")) return "Shared: " + app.removePrefix("shared:")
        return runCatching { pm.getApplicationLabel(pm.getApplicationInfo(app, 0)).toString() }
            .getOrDefault(app)
    }

    fun icon(app: String): Drawable? =
        runCatching { pm.getApplicationIcon(app) }.getOrNull()

    /** Every installed app that can use the network, with whether it is a system app. */
    fun installed(): List<Installed> =
        pm.getInstalledApplications(0)
            .filter { it.packageName != context.packageName }
            .map {
                Installed(
                    it.packageName,
                    pm.getApplicationLabel(it).toString(),
                    (it.flags and (ApplicationInfo.FLAG_SYSTEM or ApplicationInfo.FLAG_UPDATED_SYSTEM_APP)) != 0,
                )
            }

    data class Installed(val app: String, val label: String, val system: Boolean)

    companion object {
        const val INVALID_UID = -1

        /** UIDs without a package: id for the core, label for people. */
        val SYSTEM_UIDS = mapOf(
            0 to ("android.root" to "Android (root)"),
            1000 to ("android.system" to "Android system"),
            1051 to ("android.dns" to "Android DNS resolver"),
        )

        /** "1.2.3.4:80" or "[::1]:80" to an address. */
        fun socket(text: String): InetSocketAddress {
            val colon = text.lastIndexOf(':')
            require(colon > 0) { "not an ip:port: $text" }
            val host = text.substring(0, colon).removePrefix("[").removeSuffix("]")
            return InetSocketAddress(InetAddress.getByName(host), text.substring(colon + 1).toInt())
        }
    }
}
