import EmbargoFFI
import Foundation

/// What the Home screen shows: the tunnel's state and today's counts by company and country.
public struct HomeState: Equatable, Sendable {
    public var running: Bool
    public var level: EmbargoLevel
    public var blockedToday: UInt64
    public var allowedToday: UInt64
    public var owners: [Tally]
    public var countries: [Tally]
}

/// The Home screen's model over the core. Plain class (no Combine): SwiftUI wraps it on Apple
/// systems, tests call it directly.
public final class HomeModel {
    let embargo: Embargo
    let now: () -> Date

    public init(embargo: Embargo, now: @escaping () -> Date = Date.init) {
        self.embargo = embargo
        self.now = now
    }

    /// Reads the state. The history is the extension's: in the app this reads the shared
    /// database, which the extension writes.
    public func load() throws -> HomeState {
        let today = Summaries.startOfUTCDay(now())
        let owners = Summaries.byOwner(try embargo.aggregate(query: AggregateQuery(sinceMs: today, groupBy: [.owner])))
        let countries = Summaries.byCountry(try embargo.aggregate(query: AggregateQuery(sinceMs: today, groupBy: [.country])))
        return HomeState(
            running: try embargo.status().state == .running,
            level: try embargo.embargoLevel(),
            blockedToday: owners.reduce(0) { $0 + $1.blocked },
            allowedToday: owners.reduce(0) { $0 + $1.allowed },
            owners: owners,
            countries: countries
        )
    }
}

/// One UTC day's counts, for the Home screen's week.
public struct DayTally: Equatable, Sendable {
    /// "YYYY-MM-DD" (UTC).
    public var date: String
    public var blocked: UInt64
    public var allowed: UInt64
}

extension HomeModel {
    /// The last `days` UTC days (today included) that have any history, oldest first.
    public func days(_ days: Int = 7) throws -> [DayTally] {
        let since = Summaries.startOfUTCDay(now()) - Int64(days - 1) * 86_400_000
        return try embargo.aggregate(query: AggregateQuery(sinceMs: since, groupBy: [.day]))
            .map { DayTally(date: $0.date ?? "?", blocked: $0.blocked, allowed: $0.allowed) }
            .sorted { $0.date < $1.date }
    }
}

/// What the History screen filters by.
public struct HistoryFilter: Equatable, Sendable {
    /// Text the name must contain (empty: any).
    public var search: String = ""
    public var verdict: Verdict?
    public var owner: String?
    public var country: String?

    public init(search: String = "", verdict: Verdict? = nil, owner: String? = nil, country: String? = nil) {
        self.search = search
        self.verdict = verdict
        self.owner = owner
        self.country = country
    }

    func query(pageSize: UInt32, after: HistoryCursor?) -> HistoryQuery {
        let text = search.trimmingCharacters(in: .whitespaces)
        return HistoryQuery(
            nameContains: text.isEmpty ? nil : text.lowercased(),
            owner: owner,
            country: country,
            verdict: verdict,
            limit: pageSize,
            after: after
        )
    }
}

/// The History screen's model: pages of rows under a filter, loaded on demand.
public final class HistoryModel {
    let embargo: Embargo
    public let pageSize: UInt32
    public private(set) var filter = HistoryFilter()
    public private(set) var rows: [HistoryRecord] = []
    private var next: HistoryCursor?
    public private(set) var hasMore = false

    public init(embargo: Embargo, pageSize: UInt32 = 50) {
        self.embargo = embargo
        self.pageSize = pageSize
    }

    /// Applies `filter` and loads its first page.
    public func apply(_ filter: HistoryFilter) throws {
        self.filter = filter
        rows = []
        next = nil
        hasMore = true
        try loadMore()
    }

    /// Appends the next page (the list's end came into view).
    public func loadMore() throws {
        guard hasMore else { return }
        let page = try embargo.history(query: filter.query(pageSize: pageSize, after: next))
        rows += page.records
        next = page.next
        hasMore = page.next != nil
    }

    /// Writes every row under the filter (not only the loaded pages) as CSV to `file`, for the
    /// share sheet; the core streams it page by page. Returns the number of rows.
    @discardableResult
    public func exportCSV(to file: URL) throws -> UInt64 {
        try embargo.exportHistory(query: filter.query(pageSize: pageSize, after: nil), format: .csv, path: file.path)
    }
}
