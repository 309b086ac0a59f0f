import EmbargoFFI
import Foundation

/// A company or country with its counts, for the Home, Companies and Countries screens.
public struct Tally: Equatable, Sendable, Identifiable {
    /// The owner or country code; "Unknown" when the core could not tell.
    public var key: String
    public var blocked: UInt64
    public var allowed: UInt64
    public var id: String { key }

    public init(key: String, blocked: UInt64, allowed: UInt64) {
        self.key = key
        self.blocked = blocked
        self.allowed = allowed
    }
}

public enum Summaries {
    /// The label of rows whose owner or country is not known.
    public static let unknown = "Unknown"

    /// Rows of `aggregate(groupBy: [.owner])` as tallies, most blocked first (then most
    /// allowed, then by name), rows of the same owner merged.
    public static func byOwner(_ rows: [AggregateRow]) -> [Tally] {
        tally(rows) { $0.owner }
    }

    /// Rows of `aggregate(groupBy: [.country])`, likewise.
    public static func byCountry(_ rows: [AggregateRow]) -> [Tally] {
        tally(rows) { $0.country }
    }

    static func tally(_ rows: [AggregateRow], key: (AggregateRow) -> String?) -> [Tally] {
        var merged: [String: Tally] = [:]
        for row in rows {
            let k = key(row).flatMap { $0.isEmpty ? nil : $0 } ?? unknown
            var t = merged[k] ?? Tally(key: k, blocked: 0, allowed: 0)
            t.blocked += row.blocked
            t.allowed += row.allowed
            merged[k] = t
        }
        return merged.values.sorted {
            ($0.blocked, $0.allowed) != ($1.blocked, $1.allowed)
                ? ($0.blocked, $0.allowed) > ($1.blocked, $1.allowed)
                : $0.key < $1.key
        }
    }

    /// Midnight UTC of the day containing `now`, in ms: the history counts by UTC day.
    public static func startOfUTCDay(_ now: Date) -> Int64 {
        let ms = Int64(now.timeIntervalSince1970 * 1000)
        return ms - ms % 86_400_000
    }
}
