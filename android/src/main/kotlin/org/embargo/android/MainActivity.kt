package org.embargo.android

import android.app.Activity
import android.content.Intent
import android.net.VpnService
import android.os.Bundle
import android.view.Gravity
import android.view.View
import android.view.ViewGroup
import android.widget.FrameLayout
import android.widget.LinearLayout
import android.widget.TextView

/**
 * The one activity: a bottom bar over four screens (Home, Apps, History, Lists) and the app
 * detail screen opened from Apps. What the user typed or chose (tab, app, searches, filters)
 * is kept across rotation in [state].
 */
class MainActivity : Activity() {
    lateinit var ui: Ui
    lateinit var core: Core
    /** Screen state that survives rotation and process death. */
    var state = Bundle()
    private lateinit var content: FrameLayout
    private lateinit var tabs: LinearLayout
    var screen: Screen? = null
        private set

    override fun onCreate(savedInstanceState: Bundle?) {
        // Framework DayNight theme (no AndroidX): follows the system's dark setting.
        setTheme(android.R.style.Theme_DeviceDefault_DayNight)
        super.onCreate(savedInstanceState)
        requestWindowFeature(android.view.Window.FEATURE_NO_TITLE)
        ui = Ui(this)
        core = Core.get(this)
        EmbargoVpnService.createChannel(this)
        state = savedInstanceState?.getBundle(KEY_STATE) ?: Bundle()
        intent?.getStringExtra(EXTRA_TAB)?.let { if (savedInstanceState == null) state.putString(KEY_TAB, it) }
        val root = LinearLayout(this).apply {
            orientation = LinearLayout.VERTICAL
            setBackgroundColor(ui.p.background)
            fitsSystemWindows = true
        }
        content = FrameLayout(this)
        root.addView(content, LinearLayout.LayoutParams(ViewGroup.LayoutParams.MATCH_PARENT, 0, 1f))
        root.addView(ui.divider())
        tabs = ui.row().apply { setBackgroundColor(ui.p.surface) }
        root.addView(tabs, LinearLayout.LayoutParams(ViewGroup.LayoutParams.MATCH_PARENT, ViewGroup.LayoutParams.WRAP_CONTENT))
        window.statusBarColor = ui.p.background
        window.navigationBarColor = ui.p.surface
        setContentView(root)
        show()
    }

    override fun onResume() {
        super.onResume()
        runCatching { core.endPauses() }
        screen?.refresh()
    }

    override fun onSaveInstanceState(outState: Bundle) {
        super.onSaveInstanceState(outState)
        screen?.save(state)
        outState.putBundle(KEY_STATE, state)
    }

    val tab: String get() = state.getString(KEY_TAB, TAB_HOME)

    fun open(tab: String, detailApp: String? = null) {
        screen?.save(state)
        state.putString(KEY_TAB, tab)
        if (detailApp != null) state.putString(KEY_DETAIL, detailApp) else state.remove(KEY_DETAIL)
        show()
    }

    private fun show() {
        val detail = state.getString(KEY_DETAIL)
        screen = when {
            detail != null -> AppDetailScreen(this, detail)
            tab == TAB_APPS -> AppsScreen(this)
            tab == TAB_HISTORY -> HistoryScreen(this)
            tab == TAB_LISTS -> ListsScreen(this)
            else -> HomeScreen(this)
        }
        content.removeAllViews()
        content.addView(screen!!.view)
        screen!!.refresh()
        drawTabs()
    }

    private fun drawTabs() {
        tabs.removeAllViews()
        for ((id, label) in listOf(TAB_HOME to "Home", TAB_APPS to "Apps", TAB_HISTORY to "History", TAB_LISTS to "Lists")) {
            val selected = id == tab
            val t = TextView(this).apply {
                text = label
                gravity = Gravity.CENTER
                textSize = 15f
                setTextColor(if (selected) ui.p.accent else ui.p.muted)
                typeface = if (selected) android.graphics.Typeface.DEFAULT_BOLD else android.graphics.Typeface.DEFAULT
                setPadding(0, ui.dp(14), 0, ui.dp(14))
                contentDescription = "$label tab"
                setOnClickListener { open(id) }
            }
            tabs.addView(t, LinearLayout.LayoutParams(0, ViewGroup.LayoutParams.WRAP_CONTENT, 1f))
        }
    }

    @Deprecated("Deprecated in Java")
    override fun onBackPressed() {
        when {
            state.getString(KEY_DETAIL) != null -> open(tab)
            tab != TAB_HOME -> open(TAB_HOME)
            else -> @Suppress("DEPRECATION") super.onBackPressed()
        }
    }

    /** First run and the Protect switch: Android's VPN consent, then the service. */
    fun protect() {
        core.consented = true
        val consent = VpnService.prepare(this)
        if (consent != null) {
            @Suppress("DEPRECATION") startActivityForResult(consent, REQ_VPN)
        } else {
            core.mode = Mode.PROTECT
            core.stopReason = null
            EmbargoVpnService.start(this)
            askForNotifications()
            screen?.refresh()
        }
    }

    /** Android 13+: the status notification needs the user's yes (asked after VPN consent). */
    private fun askForNotifications() {
        if (android.os.Build.VERSION.SDK_INT >= 33 &&
            checkSelfPermission(android.Manifest.permission.POST_NOTIFICATIONS) != android.content.pm.PackageManager.PERMISSION_GRANTED
        ) {
            requestPermissions(arrayOf(android.Manifest.permission.POST_NOTIFICATIONS), REQ_NOTIFICATIONS)
        }
    }

    @Deprecated("Deprecated in Java")
    override fun onActivityResult(requestCode: Int, resultCode: Int, data: Intent?) {
        @Suppress("DEPRECATION") super.onActivityResult(requestCode, resultCode, data)
        when (requestCode) {
            REQ_VPN -> if (resultCode == RESULT_OK) {
                core.mode = Mode.PROTECT
                core.stopReason = null
                EmbargoVpnService.start(this)
                askForNotifications()
            } else {
                core.stopReason = "Embargo needs Android's VPN permission to see connections. Nothing leaves the phone."
            }
            else -> screen?.onResult(requestCode, resultCode, data)
        }
        screen?.refresh()
    }

    /** A part of the activity's content. */
    abstract class Screen(val activity: MainActivity) {
        val ui get() = activity.ui
        val core get() = activity.core
        abstract val view: View
        /** Reads the core again and redraws. */
        abstract fun refresh()
        open fun save(state: Bundle) {}
        open fun onResult(requestCode: Int, resultCode: Int, data: Intent?) {}
    }

    companion object {
        const val REQ_VPN = 1
        const val REQ_EXPORT_CSV = 2
        const val REQ_EXPORT_JSON = 3
        const val REQ_LIST_FILE = 4
        const val REQ_NOTIFICATIONS = 5
        const val KEY_STATE = "embargo.state"
        const val KEY_TAB = "tab"
        const val KEY_DETAIL = "detail"
        const val EXTRA_TAB = "tab"
        const val TAB_HOME = "home"
        const val TAB_APPS = "apps"
        const val TAB_HISTORY = "history"
        const val TAB_LISTS = "lists"
    }
}
