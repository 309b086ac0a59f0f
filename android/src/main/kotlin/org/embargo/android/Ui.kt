package org.embargo.android

import android.content.Context
import android.content.res.Configuration
import android.graphics.Typeface
import android.graphics.drawable.GradientDrawable
import android.text.Editable
import android.text.TextWatcher
import android.util.TypedValue
import android.view.Gravity
import android.view.View
import android.view.ViewGroup
import android.widget.Button
import android.widget.EditText
import android.widget.LinearLayout
import android.widget.TextView

/** Colours of the light and dark themes (framework views only, so the palette is ours). */
class Palette(val dark: Boolean) {
    val background = if (dark) 0xFF121316.toInt() else 0xFFF6F6F3.toInt()
    val surface = if (dark) 0xFF1F2126.toInt() else 0xFFFFFFFF.toInt()
    val text = if (dark) 0xFFECECEF.toInt() else 0xFF1B1C1F.toInt()
    val muted = if (dark) 0xFFA4A7AE.toInt() else 0xFF5C6066.toInt()
    val accent = if (dark) 0xFF8AB4F8.toInt() else 0xFF1A5FB4.toInt()
    val onAccent = if (dark) 0xFF0B1B33.toInt() else 0xFFFFFFFF.toInt()
    val blocked = if (dark) 0xFFF28B82.toInt() else 0xFFB3261E.toInt()
    val allowed = if (dark) 0xFF81C995.toInt() else 0xFF1E7B34.toInt()
    val warnBg = if (dark) 0xFF3B2F14.toInt() else 0xFFFFF2D6.toInt()
    val warnText = if (dark) 0xFFF6D58E.toInt() else 0xFF5C4300.toInt()
    val divider = if (dark) 0xFF2E3138.toInt() else 0xFFE3E3E0.toInt()

    companion object {
        fun of(context: Context) = Palette(
            (context.resources.configuration.uiMode and Configuration.UI_MODE_NIGHT_MASK) ==
                Configuration.UI_MODE_NIGHT_YES,
        )
    }
}

/** Small builders over framework views; sizes in dp/sp so large font scales stay readable. */
class Ui(val context: Context) {
    val p = Palette.of(context)

    fun dp(v: Int) = TypedValue.applyDimension(TypedValue.COMPLEX_UNIT_DIP, v.toFloat(), context.resources.displayMetrics).toInt()

    fun column(padding: Int = 16): LinearLayout = LinearLayout(context).apply {
        orientation = LinearLayout.VERTICAL
        setPadding(dp(padding), dp(padding / 2), dp(padding), dp(padding / 2))
    }

    fun row(): LinearLayout = LinearLayout(context).apply {
        orientation = LinearLayout.HORIZONTAL
        gravity = Gravity.CENTER_VERTICAL
    }

    fun text(s: CharSequence, size: Float = 16f, color: Int = p.text, bold: Boolean = false): TextView =
        TextView(context).apply {
            text = s
            setTextSize(TypedValue.COMPLEX_UNIT_SP, size)
            setTextColor(color)
            if (bold) typeface = Typeface.DEFAULT_BOLD
        }

    fun title(s: CharSequence) = text(s, 22f, bold = true).apply { setPadding(0, dp(8), 0, dp(4)) }
    fun section(s: CharSequence) = text(s.toString().uppercase(), 13f, p.muted, bold = true).apply {
        setPadding(0, dp(16), 0, dp(6))
        letterSpacing = 0.06f
    }
    fun muted(s: CharSequence, size: Float = 14f) = text(s, size, p.muted)

    fun card(vararg children: View): LinearLayout = column(14).apply {
        background = rounded(p.surface)
        children.forEach { addView(it) }
        layoutParams = LinearLayout.LayoutParams(ViewGroup.LayoutParams.MATCH_PARENT, ViewGroup.LayoutParams.WRAP_CONTENT)
            .apply { setMargins(0, dp(4), 0, dp(6)) }
        setPadding(dp(14), dp(12), dp(14), dp(12))
    }

    fun warning(s: CharSequence): TextView = text(s, 14f, p.warnText).apply {
        background = rounded(p.warnBg)
        setPadding(dp(12), dp(10), dp(12), dp(10))
        layoutParams = LinearLayout.LayoutParams(ViewGroup.LayoutParams.MATCH_PARENT, ViewGroup.LayoutParams.WRAP_CONTENT)
            .apply { setMargins(0, dp(4), 0, dp(4)) }
    }

    fun rounded(color: Int, radius: Int = 12) = GradientDrawable().apply {
        setColor(color)
        cornerRadius = dp(radius).toFloat()
    }

    fun button(label: String, primary: Boolean = false, onClick: () -> Unit): Button = Button(context).apply {
        text = label
        isAllCaps = false
        setTextSize(TypedValue.COMPLEX_UNIT_SP, 15f)
        setTextColor(if (primary) p.onAccent else p.accent)
        background = if (primary) rounded(p.accent, 20) else rounded(0x00000000, 20).apply { setStroke(dp(1), p.accent) }
        minHeight = dp(40)
        minimumHeight = dp(40)
        setPadding(dp(16), 0, dp(16), 0)
        setOnClickListener { onClick() }
    }

    fun edit(hint: String, onChange: ((String) -> Unit)? = null): EditText = EditText(context).apply {
        this.hint = hint
        setSingleLine()
        setTextSize(TypedValue.COMPLEX_UNIT_SP, 16f)
        setTextColor(p.text)
        setHintTextColor(p.muted)
        background = rounded(p.surface, 10).apply { setStroke(dp(1), p.divider) }
        setPadding(dp(12), dp(10), dp(12), dp(10))
        if (onChange != null) addTextChangedListener(object : TextWatcher {
            override fun beforeTextChanged(s: CharSequence?, a: Int, b: Int, c: Int) {}
            override fun onTextChanged(s: CharSequence?, a: Int, b: Int, c: Int) {}
            override fun afterTextChanged(s: Editable?) { onChange(s?.toString() ?: "") }
        })
    }

    fun divider(): View = View(context).apply {
        setBackgroundColor(p.divider)
        layoutParams = LinearLayout.LayoutParams(ViewGroup.LayoutParams.MATCH_PARENT, 1)
    }

    /** "label ........ value" */
    fun pair(label: CharSequence, value: CharSequence, valueColor: Int = p.text): LinearLayout = row().apply {
        setPadding(0, dp(6), 0, dp(6))
        addView(text(label, 15f), LinearLayout.LayoutParams(0, ViewGroup.LayoutParams.WRAP_CONTENT, 1f))
        addView(text(value, 15f, valueColor, bold = true))
    }

    fun weight(v: View, w: Float = 1f) = v.apply {
        layoutParams = LinearLayout.LayoutParams(0, ViewGroup.LayoutParams.WRAP_CONTENT, w)
    }

    companion object {
        fun countryName(code: String?): String {
            if (code.isNullOrBlank()) return "Unknown country"
            val name = java.util.Locale("", code).getDisplayCountry(java.util.Locale.ENGLISH)
            return if (name.isNullOrBlank() || name == code) code else "$name ($code)"
        }

        fun time(ms: Long): String = java.text.SimpleDateFormat("d MMM HH:mm", java.util.Locale.ENGLISH).format(java.util.Date(ms))
    }
}
