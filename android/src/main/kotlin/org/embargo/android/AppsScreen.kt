package org.embargo.android

import android.os.Bundle
import android.view.View
import android.view.ViewGroup
import android.widget.BaseAdapter
import android.widget.CheckBox
import android.widget.ImageView
import android.widget.LinearLayout
import android.widget.ListView
import android.widget.Switch
import org.embargo.ffi.AggregateQuery
import org.embargo.ffi.Dimension

/** Apps: every installed app with icon, label, blocked count and its blocking switch; search,
 *  system apps shown or hidden, sorted by most blocked or by name. */
class AppsScreen(activity: MainActivity) : MainActivity.Screen(activity) {
    private var query = activity.state.getString("apps.query", "")
    private var showSystem = activity.state.getBoolean("apps.system", false)
    private var byBlocked = activity.state.getBoolean("apps.byBlocked", true)
    private var rows: List<Row> = emptyList()

    data class Row(val app: String, val label: String, val system: Boolean, val blocked: ULong, val blocking: Boolean)

    val list = ListView(activity).apply {
        divider = null
        adapter = Adapter()
        setOnItemClickListener { _, _, pos, _ -> activity.open(MainActivity.TAB_APPS, rows[pos].app) }
    }
    private val sort = ui.button("") { byBlocked = !byBlocked; refresh() }
    private val system = CheckBox(activity).apply {
        text = "System apps"
        textSize = 15f
        setTextColor(ui.p.text)
        buttonTintList = android.content.res.ColorStateList.valueOf(ui.p.accent)
        isChecked = showSystem
        setOnCheckedChangeListener { _, on -> showSystem = on; refresh() }
    }
    val search = ui.edit("Search apps") { query = it; refresh() }.apply { setText(query) }

    override val view: View = ui.column().apply {
        addView(ui.title("Apps"))
        addView(search)
        addView(
            ui.row().apply {
                setPadding(0, ui.dp(6), 0, ui.dp(6))
                addView(ui.weight(system))
                addView(sort)
            },
        )
        addView(list, LinearLayout.LayoutParams(ViewGroup.LayoutParams.MATCH_PARENT, 0, 1f))
    }

    override fun refresh() {
        sort.text = if (byBlocked) "Sort: most blocked" else "Sort: name"
        val counts = core.embargo.aggregate(AggregateQuery(groupBy = listOf(Dimension.APP)))
            .associate { (it.app ?: "") to it.blocked }
        val q = query.trim().lowercase()
        rows = core.owners.installed()
            .filter { showSystem || !it.system }
            .filter { q.isEmpty() || it.label.lowercase().contains(q) || it.app.contains(q) }
            .map {
                var settings = core.embargo.appSettings(it.app)
                // The core decides system apps by its own default; tell it which ones are.
                if (settings.system != it.system) {
                    core.embargo.setSystemApp(it.app, it.system)
                    settings = core.embargo.appSettings(it.app)
                }
                Row(it.app, it.label, it.system, counts[it.app] ?: 0u, settings.blockingEffective)
            }
            .sortedWith(
                if (byBlocked) compareByDescending<Row> { it.blocked }.thenBy { it.label.lowercase() }
                else compareBy { it.label.lowercase() },
            )
        (list.adapter as BaseAdapter).notifyDataSetChanged()
    }

    override fun save(state: Bundle) {
        state.putString("apps.query", query)
        state.putBoolean("apps.system", showSystem)
        state.putBoolean("apps.byBlocked", byBlocked)
    }

    /** Flips blocking for [app] in the core (the per-app rule check() and the tunnel use). */
    fun setBlocking(app: String, on: Boolean) {
        core.embargo.setAppBlocking(app, on)
        refresh()
    }

    inner class Adapter : BaseAdapter() {
        override fun getCount() = rows.size
        override fun getItem(position: Int) = rows[position]
        override fun getItemId(position: Int) = position.toLong()
        override fun getView(position: Int, convertView: View?, parent: ViewGroup?): View {
            val r = rows[position]
            val icon = ImageView(activity).apply {
                setImageDrawable(core.owners.icon(r.app) ?: activity.getDrawable(android.R.drawable.sym_def_app_icon))
            }
            val texts = ui.column(0).apply {
                addView(ui.text(r.label, 16f, bold = true))
                addView(
                    ui.muted(
                        (if (r.blocked > 0u) "${r.blocked} blocked" else "Nothing blocked") +
                            (if (r.system) " · system" else ""),
                    ),
                )
            }
            val switch = Switch(activity).apply {
                isChecked = r.blocking
                contentDescription = "Block trackers in ${r.label}"
                setOnCheckedChangeListener { _, on -> setBlocking(r.app, on) }
            }
            return ui.row().apply {
                setPadding(ui.dp(4), ui.dp(10), ui.dp(4), ui.dp(10))
                tag = r.app
                addView(icon, LinearLayout.LayoutParams(ui.dp(40), ui.dp(40)).apply { marginEnd = ui.dp(14) })
                addView(ui.weight(texts))
                addView(switch)
            }
        }
    }
}
