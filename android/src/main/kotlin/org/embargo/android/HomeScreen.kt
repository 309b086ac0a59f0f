package org.embargo.android

import android.view.View
import android.widget.LinearLayout
import android.widget.RadioButton
import android.widget.RadioGroup
import android.widget.ScrollView
import org.embargo.ffi.Dimension
import org.embargo.ffi.EmbargoLevel

/** Home: the one switch, the embargo level, today's blocked by owner and country, warnings,
 *  and on first run the consent card explaining what stays on the phone. */
class HomeScreen(activity: MainActivity) : MainActivity.Screen(activity) {
    private val body = ui.column()
    override val view: View = ScrollView(activity).apply { addView(body); isFillViewport = true }

    override fun refresh() {
        body.removeAllViews()
        body.addView(ui.title("Embargo"))
        if (!core.consented) {
            consent()
            return
        }
        val mode = core.mode
        body.addView(
            ui.card(
                ui.text(
                    when (mode) {
                        Mode.PROTECT -> "Protecting"
                        Mode.PAUSED -> "Paused"
                        Mode.OFF -> "Off"
                    },
                    26f, if (mode == Mode.PROTECT) ui.p.allowed else ui.p.muted, bold = true,
                ),
                ui.muted(
                    when (mode) {
                        Mode.PROTECT -> "Trackers are blocked for every app you did not switch off."
                        Mode.PAUSED -> "Nothing is blocked until you protect again."
                        Mode.OFF -> "Embargo is not running."
                    },
                ),
                segmented(
                    listOf("Protect", "Pause", "Off"), mode.ordinal, "Protection",
                ) { i ->
                    when (i) {
                        0 -> activity.protect()
                        1 -> EmbargoVpnService.stop(activity, Mode.PAUSED)
                        else -> EmbargoVpnService.stop(activity, Mode.OFF)
                    }
                    refreshSoon()
                },
            ),
        )
        Warnings.current(activity).forEach { body.addView(ui.warning(it)) }

        body.addView(ui.section("Embargo level"))
        val level = runCatching { core.embargo.embargoLevel() }.getOrDefault(EmbargoLevel.TELEMETRY)
        body.addView(
            ui.card(
                segmented(listOf("Telemetry", "Full"), level.ordinal, "Embargo level") { i ->
                    core.embargo.setEmbargoLevel(if (i == 0) EmbargoLevel.TELEMETRY else EmbargoLevel.FULL)
                    refresh()
                },
                ui.muted(
                    if (level == EmbargoLevel.TELEMETRY) {
                        "Blocks the data collection of ByteDance, Tencent, Alibaba and others. Their apps keep working."
                    } else {
                        "Blocks everything these companies own and every server in China. Some apps will stop working."
                    },
                ),
            ),
        )

        val total = core.blockedToday()
        body.addView(ui.section("Blocked today: $total"))
        val owners = core.today(Dimension.OWNER).take(5)
        // Names stopped at DNS never get an address, so they have no country: not a "unknown" row.
        val countries = core.today(Dimension.COUNTRY).filter { it.country != null }.take(5)
        if (owners.isEmpty()) {
            body.addView(ui.card(ui.muted("Nothing blocked yet today.")))
        } else {
            body.addView(
                ui.card(
                    ui.text("By owner", 15f, ui.p.muted),
                    *owners.map { ui.pair(it.owner ?: "Unknown owner", it.blocked.toString(), ui.p.blocked) }.toTypedArray(),
                ),
            )
            body.addView(
                ui.card(
                    ui.text("By country", 15f, ui.p.muted),
                    *(
                        if (countries.isEmpty()) arrayOf(ui.muted("No country yet: what was blocked was stopped at DNS, before any address."))
                        else countries.map { ui.pair(Ui.countryName(it.country), it.blocked.toString(), ui.p.blocked) }.toTypedArray<android.view.View>()
                        ),
                ),
            )
        }
        body.addView(ui.button("See the history") { activity.open(MainActivity.TAB_HISTORY) })
    }

    private fun consent() {
        body.addView(
            ui.card(
                ui.text("Block trackers in every app", 19f, bold = true),
                ui.text(
                    "Embargo runs a VPN on this phone so it can see which servers your apps contact, " +
                        "and block the ones that collect data about you.\n\n" +
                        "Everything stays on the phone: the history of connections, the lists and your " +
                        "choices are stored here and never sent anywhere. Allowed traffic goes straight " +
                        "to where your apps sent it; no server of ours sees it.\n\n" +
                        "Android will ask you to allow the VPN connection next.",
                    15f,
                ).apply { setPadding(0, ui.dp(8), 0, ui.dp(12)) },
                ui.button("Allow and protect", primary = true) { activity.protect() },
            ),
        )
    }

    private fun segmented(labels: List<String>, selected: Int, description: String, onPick: (Int) -> Unit) =
        RadioGroup(activity).apply {
            // Side by side at normal sizes; stacked at large font scales so no label wraps.
            orientation = if (activity.resources.configuration.fontScale > 1.15f) LinearLayout.VERTICAL else LinearLayout.HORIZONTAL
            contentDescription = description
            setPadding(0, ui.dp(8), 0, 0)
            labels.forEachIndexed { i, label ->
                addView(
                    RadioButton(activity).apply {
                        id = View.generateViewId()
                        text = label
                        textSize = 16f
                        setTextColor(ui.p.text)
                        buttonTintList = android.content.res.ColorStateList.valueOf(ui.p.accent)
                        isChecked = i == selected
                        setPadding(ui.dp(4), 0, ui.dp(12), 0)
                        isSingleLine = true
                        setOnClickListener { if (i != selected) onPick(i) }
                    },
                )
            }
        }

    private fun refreshSoon() = view.postDelayed({ refresh() }, 300)
}
