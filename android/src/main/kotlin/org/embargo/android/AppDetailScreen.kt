package org.embargo.android

import android.view.View
import android.widget.ImageView
import android.widget.LinearLayout
import android.widget.ScrollView
import android.widget.Switch
import org.embargo.ffi.AggregateQuery
import org.embargo.ffi.Dimension
import org.embargo.ffi.HistoryQuery
import org.embargo.ffi.RuleTarget
import org.embargo.ffi.Verdict

/** One app: owners and countries it tried to reach, blocked/allowed counts, its last
 *  connections, allow/block per target, and a one-hour pause. */
class AppDetailScreen(activity: MainActivity, val app: String) : MainActivity.Screen(activity) {
    private val body = ui.column()
    override val view: View = ScrollView(activity).apply { addView(body) }

    override fun refresh() {
        body.removeAllViews()
        val label = core.owners.label(app)
        body.addView(
            ui.row().apply {
                setPadding(0, ui.dp(8), 0, ui.dp(8))
                addView(ui.button("‹ Apps") { activity.open(MainActivity.TAB_APPS) })
            },
        )
        body.addView(
            ui.row().apply {
                addView(
                    ImageView(activity).apply {
                        setImageDrawable(core.owners.icon(app) ?: activity.getDrawable(android.R.drawable.sym_def_app_icon))
                    },
                    LinearLayout.LayoutParams(ui.dp(48), ui.dp(48)).apply { marginEnd = ui.dp(14) },
                )
                addView(
                    ui.weight(
                        ui.column(0).apply {
                            addView(ui.text(label, 22f, bold = true))
                            addView(ui.muted(app, 13f))
                        },
                    ),
                )
            },
        )
        val settings = core.embargo.appSettings(app)
        val pausedUntil = core.pausedUntil(app)
        val blockSwitch = Switch(activity).apply {
            isChecked = settings.blockingEffective
            contentDescription = "Block trackers in $label"
            setOnCheckedChangeListener { _, on -> core.embargo.setAppBlocking(app, on); refresh() }
        }
        body.addView(
            ui.card(
                ui.row().apply {
                    addView(ui.weight(ui.text("Block trackers", 17f, bold = true)))
                    addView(blockSwitch)
                },
                ui.muted(
                    when {
                        pausedUntil > System.currentTimeMillis() -> "Paused until ${Ui.time(pausedUntil)}"
                        settings.blockingEffective -> "Connections to trackers are blocked."
                        else -> "Everything this app sends is allowed (still recorded)."
                    },
                ),
                ui.button("Pause for 1 hour") { core.pauseApp(app); refresh() }.apply {
                    isEnabled = settings.blockingEffective
                },
            ),
        )

        val totals = core.embargo.aggregate(AggregateQuery(app = app)).let { rows ->
            rows.sumOf { it.blocked } to rows.sumOf { it.allowed }
        }
        body.addView(
            ui.card(
                ui.pair("Blocked", totals.first.toString(), ui.p.blocked),
                ui.pair("Allowed", totals.second.toString(), ui.p.allowed),
            ),
        )

        val overrides = settings.overrides.associate { it.target to it.verdict }
        body.addView(ui.section("Owners it tried to reach"))
        val owners = core.embargo.aggregate(AggregateQuery(app = app, groupBy = listOf(Dimension.OWNER)))
        body.addView(ui.card(*targets(owners.map { Triple(it.owner, it.blocked, it.allowed) }, overrides) { RuleTarget.Owner(it) }))
        body.addView(ui.section("Countries"))
        val countries = core.embargo.aggregate(AggregateQuery(app = app, groupBy = listOf(Dimension.COUNTRY)))
        body.addView(ui.card(*targets(countries.map { Triple(it.country, it.blocked, it.allowed) }, overrides, { c -> c?.let(Ui::countryName) ?: "No country (stopped at DNS)" }) { RuleTarget.Country(it) }))

        body.addView(ui.section("Last connections"))
        val last = core.embargo.history(HistoryQuery(app = app, limit = 20u)).records
        if (last.isEmpty()) body.addView(ui.card(ui.muted("No connections recorded yet.")))
        last.forEach { r ->
            val name = r.name ?: r.addr ?: "?"
            val target = RuleTarget.Name(name)
            val verdict = overrides[target]
            body.addView(
                ui.card(
                    ui.row().apply {
                        addView(ui.weight(ui.text(name, 15f, bold = true)))
                        addView(ui.text(if (r.verdict == Verdict.BLOCK) "Blocked" else "Allowed", 14f, if (r.verdict == Verdict.BLOCK) ui.p.blocked else ui.p.allowed, bold = true))
                    },
                    ui.muted(listOfNotNull(r.owner, r.country?.let(Ui::countryName), Ui.time(r.lastSeenMs), if (r.count > 1u) "${r.count}×" else null).joinToString(" · ")),
                    overrideButtons(target, verdict),
                ),
            )
        }
    }

    private fun targets(
        rows: List<Triple<String?, ULong, ULong>>,
        overrides: Map<RuleTarget, Verdict>,
        show: (String?) -> String = { it ?: "Unknown" },
        target: (String) -> RuleTarget,
    ): Array<View> {
        if (rows.isEmpty()) return arrayOf(ui.muted("Nothing yet."))
        return rows.sortedByDescending { it.second + it.third }.flatMap { (key, blocked, allowed) ->
            val line = ui.row().apply {
                setPadding(0, ui.dp(6), 0, ui.dp(2))
                addView(ui.weight(ui.text(show(key), 15f, bold = true)))
                addView(ui.text("$blocked blocked · $allowed allowed", 13f, ui.p.muted))
            }
            if (key == null) listOf(line) else {
                val t = target(key)
                listOf(line, overrideButtons(t, overrides[t]))
            }
        }.toTypedArray()
    }

    /** "Always allow" / "Always block" for one target of this app; the current choice shows. */
    private fun overrideButtons(target: RuleTarget, current: Verdict?): View = ui.row().apply {
        setPadding(0, ui.dp(4), 0, ui.dp(4))
        fun set(v: Verdict) {
            if (current == v) core.embargo.removeAppOverride(app, target) else core.embargo.setAppOverride(app, target, v)
            refresh()
        }
        addView(ui.button(if (current == Verdict.ALLOW) "✓ Always allowed" else "Always allow", current == Verdict.ALLOW) { set(Verdict.ALLOW) })
        addView(View(activity), LinearLayout.LayoutParams(ui.dp(8), 1))
        addView(ui.button(if (current == Verdict.BLOCK) "✓ Always blocked" else "Always block", current == Verdict.BLOCK) { set(Verdict.BLOCK) })
    }
}
