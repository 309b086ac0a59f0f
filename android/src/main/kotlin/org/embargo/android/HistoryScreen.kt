package org.embargo.android

import android.app.Activity
import android.content.Intent
import android.net.Uri
import android.os.Bundle
import android.view.View
import android.view.ViewGroup
import android.widget.AbsListView
import android.widget.BaseAdapter
import android.widget.CheckBox
import android.widget.HorizontalScrollView
import android.widget.LinearLayout
import android.widget.ListView
import org.embargo.ffi.ExportFormat
import org.embargo.ffi.HiddenEntry
import org.embargo.ffi.HistoryCursor
import org.embargo.ffi.HistoryQuery
import org.embargo.ffi.HistoryRecord
import org.embargo.ffi.Verdict

/** History: connections newest first, a page at a time (the core's cursor) as the user scrolls;
 *  filters, search, noise hidden, clear, and export to a file the user picks (CSV or JSON). */
class HistoryScreen(activity: MainActivity) : MainActivity.Screen(activity) {
    private val s = activity.state
    private var search = s.getString("history.search", "")
    /** "blocked", "allowed" or "all". */
    private var verdict = s.getString("history.verdict", "blocked")
    /** "today", "week" or "all". */
    private var period = s.getString("history.period", "all")
    private var app: String? = s.getString("history.app")
    private var owner: String? = s.getString("history.owner")
    private var country: String? = s.getString("history.country")
    private var showHidden = s.getBoolean("history.hidden", false)

    val records = mutableListOf<HistoryRecord>()
    private var next: HistoryCursor? = null
    private var loading = false

    val list = ListView(activity).apply {
        divider = null
        adapter = Adapter()
        setOnScrollListener(object : AbsListView.OnScrollListener {
            override fun onScrollStateChanged(view: AbsListView?, scrollState: Int) {}
            override fun onScroll(view: AbsListView?, first: Int, visible: Int, total: Int) {
                if (first + visible >= total - 5) loadMore()
            }
        })
    }
    private val filters = ui.row().apply { setPadding(0, ui.dp(8), 0, ui.dp(4)) }
    private val summary = ui.muted("")
    val searchBox = ui.edit("Search names") { search = it; reload() }.apply { setText(search) }

    override val view: View = ui.column().apply {
        addView(
            ui.row().apply {
                addView(ui.weight(ui.title("History")))
                addView(ui.button("Export") { export() })
            },
        )
        addView(searchBox)
        addView(HorizontalScrollView(activity).apply { isHorizontalScrollBarEnabled = false; addView(filters) })
        addView(summary)
        addView(list, LinearLayout.LayoutParams(ViewGroup.LayoutParams.MATCH_PARENT, 0, 1f))
    }

    fun query(after: HistoryCursor? = null) = HistoryQuery(
        sinceMs = when (period) {
            "today" -> Core.startOfToday()
            "week" -> System.currentTimeMillis() - 7 * 24 * Core.HOUR_MS
            else -> null
        },
        app = app,
        nameContains = search.trim().ifEmpty { null },
        owner = owner,
        country = country,
        verdict = when (verdict) {
            "blocked" -> Verdict.BLOCK
            "allowed" -> Verdict.ALLOW
            else -> null
        },
        includeHidden = showHidden,
        limit = PAGE,
        after = after,
    )

    override fun refresh() {
        drawFilters()
        reload()
    }

    private fun reload() {
        records.clear()
        next = null
        loading = false
        runCatching { core.embargo.flushHistory() }
        loadPage(null)
    }

    /** Loads the page after the last one shown, if there is one. */
    fun loadMore() {
        val after = next ?: return
        loadPage(after)
    }

    private fun loadPage(after: HistoryCursor?) {
        if (loading) return
        loading = true
        val page = core.embargo.history(query(after))
        records.addAll(page.records)
        next = page.next
        loading = false
        summary.text = when {
            records.isEmpty() -> "Nothing recorded for these filters."
            next != null -> "${records.size} shown, more as you scroll"
            else -> "${records.size} shown"
        }
        (list.adapter as BaseAdapter).notifyDataSetChanged()
    }

    private fun drawFilters() {
        filters.removeAllViews()
        fun chip(label: String, on: Boolean, click: () -> Unit) {
            filters.addView(
                ui.button(label, on, click).apply { minWidth = 0; minimumWidth = 0 },
                LinearLayout.LayoutParams(ViewGroup.LayoutParams.WRAP_CONTENT, ui.dp(40)).apply { marginEnd = ui.dp(6) },
            )
        }
        chip(mapOf("blocked" to "Blocked", "allowed" to "Allowed", "all" to "All verdicts")[verdict]!!, verdict != "all") {
            verdict = mapOf("blocked" to "allowed", "allowed" to "all", "all" to "blocked")[verdict]!!
            refresh()
        }
        chip(mapOf("today" to "Today", "week" to "7 days", "all" to "Any time")[period]!!, period != "all") {
            period = mapOf("all" to "today", "today" to "week", "week" to "all")[period]!!
            refresh()
        }
        app?.let { chip("App: ${core.owners.label(it)} ✕", true) { app = null; refresh() } }
        owner?.let { chip("Owner: $it ✕", true) { owner = null; refresh() } }
        country?.let { chip("Country: $it ✕", true) { country = null; refresh() } }
        chip(if (showHidden) "Noise shown" else "Noise hidden", !showHidden) { showHidden = !showHidden; refresh() }
        chip("Clear…", false) { confirmClear() }
    }

    fun filterApp(value: String?) { app = value; refresh() }
    fun filterOwner(value: String?) { owner = value; refresh() }
    fun filterCountry(value: String?) { country = value; refresh() }

    private fun confirmClear() {
        android.app.AlertDialog.Builder(activity)
            .setTitle("Clear the history?")
            .setMessage("Every recorded connection is deleted from this phone. Rules and lists stay.")
            .setPositiveButton("Clear") { _, _ -> clear() }
            .setNegativeButton("Cancel", null)
            .show()
    }

    fun clear() {
        val running = core.mode == Mode.PROTECT
        if (running) EmbargoVpnService.stop(activity, Mode.PROTECT)
        core.clearHistory()
        if (running) EmbargoVpnService.start(activity)
        refresh()
    }

    private fun export() {
        android.app.AlertDialog.Builder(activity)
            .setTitle("Export what is shown")
            .setItems(arrayOf("CSV (spreadsheets)", "JSON")) { _, which -> exportAs(if (which == 0) ExportFormat.CSV else ExportFormat.JSON) }
            .show()
    }

    /** Asks Android for a file to write (Storage Access Framework); [onResult] writes it. */
    fun exportAs(format: ExportFormat) {
        val csv = format == ExportFormat.CSV
        val intent = Intent(Intent.ACTION_CREATE_DOCUMENT)
            .addCategory(Intent.CATEGORY_OPENABLE)
            .setType(if (csv) "text/csv" else "application/json")
            .putExtra(Intent.EXTRA_TITLE, if (csv) "embargo-history.csv" else "embargo-history.json")
        @Suppress("DEPRECATION")
        activity.startActivityForResult(intent, if (csv) MainActivity.REQ_EXPORT_CSV else MainActivity.REQ_EXPORT_JSON)
    }

    override fun onResult(requestCode: Int, resultCode: Int, data: Intent?) {
        val uri: Uri = data?.data ?: return
        if (resultCode != Activity.RESULT_OK) return
        val format = if (requestCode == MainActivity.REQ_EXPORT_CSV) ExportFormat.CSV else ExportFormat.JSON
        // Every matching record, not only the loaded pages.
        val bytes = core.embargo.exportHistoryBytes(query().copy(limit = 1000u, after = null), format)
        val written = runCatching {
            activity.contentResolver.openOutputStream(uri, "wt")!!.use { it.write(bytes) }
        }
        android.widget.Toast.makeText(
            activity,
            written.fold({ "Exported ${bytes.size / 1024 + 1} KB" }, { "Export failed: ${it.message}" }),
            android.widget.Toast.LENGTH_LONG,
        ).show()
    }

    override fun save(state: Bundle) {
        state.putString("history.search", search)
        state.putString("history.verdict", verdict)
        state.putString("history.period", period)
        state.putString("history.app", app)
        state.putString("history.owner", owner)
        state.putString("history.country", country)
        state.putBoolean("history.hidden", showHidden)
    }

    inner class Adapter : BaseAdapter() {
        override fun getCount() = records.size
        override fun getItem(position: Int) = records[position]
        override fun getItemId(position: Int) = records[position].id
        override fun getView(position: Int, convertView: View?, parent: ViewGroup?): View {
            val r = records[position]
            val blocked = r.verdict == Verdict.BLOCK
            val name = r.name ?: r.addr ?: "?"
            return ui.column(0).apply {
                setPadding(ui.dp(2), ui.dp(10), ui.dp(14), ui.dp(10))
                tag = r.id
                addView(
                    ui.row().apply {
                        addView(ui.weight(ui.text(name, 15f, bold = true)))
                        addView(ui.text(if (blocked) "Blocked" else "Allowed", 13f, if (blocked) ui.p.blocked else ui.p.allowed, bold = true))
                    },
                )
                addView(ui.muted(core.owners.label(r.app) + " · " + Ui.time(r.lastSeenMs) + (if (r.count > 1u) " · ${r.count}×" else ""), 13f).apply {
                    setOnClickListener { filterApp(r.app) }
                })
                addView(
                    ui.muted(listOfNotNull(r.owner, r.country?.let(Ui::countryName), r.list?.let { "list $it" + (r.line?.let { l -> ", line $l" } ?: "") }).joinToString(" · "), 13f).apply {
                        setOnClickListener { if (r.owner != null) filterOwner(r.owner) else filterCountry(r.country) }
                    },
                )
                setOnLongClickListener {
                    r.name?.let { core.embargo.hide(HiddenEntry.Name(it)); reload() }
                    true
                }
            }
        }
    }

    companion object {
        val PAGE = 50u
    }
}
