package org.embargo.android

import android.app.Activity
import android.content.Intent
import android.os.Handler
import android.os.Looper
import android.view.View
import android.widget.ScrollView
import android.widget.Switch
import java.net.HttpURLConnection
import java.net.URL
import org.embargo.ffi.AppDefaults
import org.embargo.ffi.LoadReport

/** Lists and settings: the built-in list and added ones (by URL with progress, or from a file),
 *  the DNS upstream, how long history is kept, and the defaults for new and system apps. */
class ListsScreen(activity: MainActivity) : MainActivity.Screen(activity) {
    private val body = ui.column()
    override val view: View = ScrollView(activity).apply { addView(body) }
    private val main = Handler(Looper.getMainLooper())
    val url = ui.edit("List URL, https://…")
    val name = ui.edit("Name, e.g. hagezi-pro")
    val progress = ui.muted("")

    override fun refresh() {
        body.removeAllViews()
        body.addView(ui.title("Lists and settings"))
        body.addView(ui.section("Block lists"))
        body.addView(
            ui.card(
                ui.text("Built-in embargo list", 16f, bold = true),
                ui.muted("Always on: the data endpoints and networks of ByteDance, Tencent, Alibaba and others. How much it blocks is the embargo level on Home."),
            ),
        )
        val added = core.embargo.lists()
        if (added.isEmpty()) body.addView(ui.muted("No lists added yet. Tracker lists (hosts, AdBlock, DuckDuckGo, Disconnect…) block for every app except the tracker's own company.").apply { setPadding(0, ui.dp(4), 0, 0) })
        for (l in added) {
            val sw = Switch(activity).apply {
                isChecked = l.enabled
                contentDescription = "Use list ${l.name}"
                setOnCheckedChangeListener { _, on -> core.embargo.setListEnabled(l.name, on); refresh() }
            }
            body.addView(
                ui.card(
                    ui.row().apply {
                        addView(ui.weight(ui.text(if (l.name == "builtin") "Built-in embargo list" else l.name, 16f, bold = true)))
                        addView(sw)
                    },
                    ui.muted(
                        "${l.accepted} entries · ${l.format.name.lowercase().replace('_', ' ')}" +
                            (if (l.errorCount > 0u) " · ${l.errorCount} lines not understood" else "") +
                            (if (l.updatedAtMs > 0) " · updated ${Ui.time(l.updatedAtMs)}" else ""),
                    ),
                    *(if (l.name == "builtin") emptyArray() else arrayOf<View>(ui.button("Remove") { core.embargo.removeList(l.name); refresh() })),
                ),
            )
        }
        body.addView(ui.section("Add a list"))
        body.addView(
            ui.card(
                name, spacer(), url, spacer(),
                ui.row().apply {
                    addView(ui.button("Download", primary = true) { download() })
                    addView(View(activity), android.widget.LinearLayout.LayoutParams(ui.dp(8), 1))
                    addView(ui.button("From a file…") { pickFile() })
                },
                progress,
            ),
        )

        body.addView(ui.section("Apps"))
        val defaults = core.embargo.appDefaults()
        body.addView(
            ui.card(
                toggle("Block in newly installed apps", defaults.newAppBlocking) {
                    core.embargo.setAppDefaults(AppDefaults(it, defaults.systemAppBlocking))
                },
                toggle("Block in system apps", defaults.systemAppBlocking) {
                    core.embargo.setAppDefaults(AppDefaults(defaults.newAppBlocking, it))
                },
            ),
        )

        body.addView(ui.section("DNS and history"))
        val dns = ui.edit("ip, ip:port, tls://name@ip or https://name@ip/dns-query").apply { setText(core.prefs.getString(Core.KEY_DNS, Core.DEFAULT_DNS)) }
        val retention = core.prefs.getInt(Core.KEY_RETENTION, 30)
        val mtu = ui.edit("1280 to 65535").apply { setText(core.config().mtu.toString()) }
        body.addView(
            ui.card(
                ui.text("DNS server for allowed names", 15f),
                ui.muted("Quad9 by default: it does not log and does not block by itself. tls:// or https:// encrypts every question to it. Applies the next time protection starts.", 13f),
                spacer(), dns, spacer(),
                ui.button("Save DNS server") {
                    val v = dns.text.toString().trim()
                    if (!Core.isEncryptedDns(v) && (v.isEmpty() || !v.matches(Regex("[0-9a-fA-F:.\\[\\]]+")))) {
                        progress.text = "Not an address: \"$v\""
                    } else {
                        core.prefs.edit().putString(Core.KEY_DNS, v).apply()
                        refresh()
                    }
                },
                spacer(),
                ui.text("Tunnel MTU", 15f),
                ui.muted("The largest packet apps send into the tunnel. Larger moves bulk data with fewer packets and less battery; ${Core.DEFAULT_MTU} by default. Applies the next time protection starts.", 13f),
                mtu, spacer(),
                ui.button("Save MTU") {
                    val v = mtu.text.toString().trim().toIntOrNull()
                    if (v == null || v !in Core.MIN_MTU..Core.MAX_MTU) {
                        progress.text = "The MTU is a number from ${Core.MIN_MTU} to ${Core.MAX_MTU}."
                    } else {
                        core.prefs.edit().putInt(Core.KEY_MTU, v).apply()
                        refresh()
                    }
                },
                spacer(),
                ui.text("Keep history for", 15f),
                ui.row().apply {
                    for (days in listOf(7, 30, 90)) {
                        addView(ui.button("$days days", days == retention) {
                            core.prefs.edit().putInt(Core.KEY_RETENTION, days).apply()
                            refresh()
                        })
                        addView(View(activity), android.widget.LinearLayout.LayoutParams(ui.dp(8), 1))
                    }
                },
            ),
        )
    }

    private fun spacer() = View(activity).apply { minimumHeight = ui.dp(8) }

    private fun toggle(label: String, on: Boolean, set: (Boolean) -> Unit) = ui.row().apply {
        setPadding(0, ui.dp(6), 0, ui.dp(6))
        addView(ui.weight(ui.text(label, 15f)))
        addView(Switch(activity).apply { isChecked = on; contentDescription = label; setOnCheckedChangeListener { _, v -> set(v); refresh() } })
    }

    private fun listName(): String? {
        val n = name.text.toString().trim()
        if (n.isEmpty() || !n.matches(Regex("[A-Za-z0-9._-]+"))) {
            progress.text = "Give the list a name of letters, digits, '.', '_' or '-'."
            return null
        }
        return n
    }

    /** Downloads the list (our own sockets are outside the tunnel), showing bytes as they come. */
    private fun download() {
        val n = listName() ?: return
        val u = url.text.toString().trim()
        if (!u.startsWith("https://") && !u.startsWith("http://")) {
            progress.text = "Not a web address: \"$u\""
            return
        }
        progress.text = "Connecting…"
        Core.background({
            val conn = URL(u).openConnection() as HttpURLConnection
            conn.connectTimeout = 15000
            conn.readTimeout = 30000
            if (conn.responseCode != 200) error("the server answered ${conn.responseCode} ${conn.responseMessage}")
            val total = conn.contentLengthLong
            val out = java.io.ByteArrayOutputStream()
            conn.inputStream.use { input ->
                val buf = ByteArray(64 * 1024)
                var last = 0L
                while (true) {
                    val r = input.read(buf)
                    if (r < 0) break
                    out.write(buf, 0, r)
                    val now = System.currentTimeMillis()
                    if (now - last > 250) {
                        last = now
                        val got = out.size()
                        main.post { progress.text = if (total > 0) "Downloading… ${got * 100 / total}%" else "Downloading… ${got / 1024} KB" }
                    }
                }
            }
            core.embargo.setList(n, out.toByteArray())
        }) { result -> report(result) }
    }

    private fun pickFile() {
        if (listName() == null) return
        val intent = Intent(Intent.ACTION_OPEN_DOCUMENT).addCategory(Intent.CATEGORY_OPENABLE).setType("*/*")
        @Suppress("DEPRECATION") activity.startActivityForResult(intent, MainActivity.REQ_LIST_FILE)
    }

    override fun onResult(requestCode: Int, resultCode: Int, data: Intent?) {
        if (requestCode != MainActivity.REQ_LIST_FILE || resultCode != Activity.RESULT_OK) return
        val uri = data?.data ?: return
        val n = listName() ?: return
        progress.text = "Reading…"
        Core.background({
            val bytes = activity.contentResolver.openInputStream(uri)!!.use { it.readBytes() }
            core.embargo.setList(n, bytes)
        }) { result -> report(result) }
    }

    private fun report(result: Result<LoadReport>) {
        refresh()
        progress.text = result.fold(
            { r ->
                "Added ${r.list}: ${r.accepted} entries" +
                    (if (r.errorCount > 0u) ", ${r.errorCount} lines not understood (first: line ${r.errors.firstOrNull()?.line}: ${r.errors.firstOrNull()?.message})" else "")
            },
            { "Could not add the list: ${it.message}" },
        )
    }
}
