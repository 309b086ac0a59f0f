import EmbargoFFI
import Foundation

/// One history row as the History screen shows it.
public struct HistoryRowText: Equatable, Sendable {
    /// The name asked for or connected to, else the address.
    public var title: String
    /// Owner, country and protocol, e.g. "ByteDance · SG · DNS".
    public var detail: String
    /// "Blocked" or "Allowed", with the list that decided a block ("Blocked by builtin").
    public var verdict: String
    /// "3×" when the row coalesces repeats, else empty.
    public var repeats: String
    /// Time of the latest occurrence.
    public var time: String
}

/// Formats history rows. The time zone and locale are injected so that tests are stable.
public struct HistoryFormatter: Sendable {
    public var timeZone: TimeZone
    public var locale: Locale

    public init(timeZone: TimeZone = .current, locale: Locale = .current) {
        self.timeZone = timeZone
        self.locale = locale
    }

    public func text(_ record: HistoryRecord) -> HistoryRowText {
        let title = record.name ?? record.addr.map { record.port > 0 ? "\($0):\(record.port)" : $0 } ?? "?"
        var detail = [record.owner ?? "Unknown owner"]
        if let country = record.country { detail.append(country) }
        detail.append(Self.label(record.protocol))
        var verdict = record.verdict == .block ? "Blocked" : "Allowed"
        if record.verdict == .block, let list = record.list { verdict += " by \(list)" }
        return HistoryRowText(
            title: title,
            detail: detail.joined(separator: " · "),
            verdict: verdict,
            repeats: record.count > 1 ? "\(record.count)×" : "",
            time: time(ms: record.lastSeenMs)
        )
    }

    /// "HH:mm:ss" of a time in ms since the epoch.
    public func time(ms: Int64) -> String {
        let formatter = DateFormatter()
        formatter.timeZone = timeZone
        formatter.locale = locale
        formatter.dateFormat = "HH:mm:ss"
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(ms) / 1000))
    }

    public static func label(_ p: EmbargoFFI.`Protocol`) -> String {
        switch p {
        case .tcp: return "TCP"
        case .udp: return "UDP"
        case .dns: return "DNS"
        default: return "IP"
        }
    }
}

/// Byte counts for the status screen: "812 B", "1.5 KB", "3.2 MB".
public func formatBytes(_ bytes: UInt64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024, unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : "\(String(format: "%.1f", value)) \(units[unit])"
}
