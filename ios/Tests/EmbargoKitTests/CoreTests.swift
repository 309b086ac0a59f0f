import EmbargoFFI
@testable import EmbargoKit
import Foundation
import XCTest

/// The real core (the host's libembargo_ffi.so) under EmbargoKit: DNS questions go in as IP
/// packets through pushPackets, the built-in list decides, answers come back in batches.

/// A packet flow as NEPacketTunnelFlow behaves: reads wait for packets, writes are collected.
final class FakeFlow: PacketFlow {
    private let cond = NSCondition()
    private var inbound: [[Data]] = []
    private var pendingRead: (([Data]) -> Void)?
    private(set) var written: [[Data]] = []

    func readPackets(_ handler: @escaping ([Data]) -> Void) {
        cond.lock()
        if !inbound.isEmpty {
            let batch = inbound.removeFirst()
            cond.unlock()
            DispatchQueue.global().async { handler(batch) }
            return
        }
        pendingRead = handler
        cond.unlock()
    }

    /// The apps send `packets` (one readPackets batch).
    func send(_ packets: [Data]) {
        cond.lock()
        if let handler = pendingRead {
            pendingRead = nil
            cond.unlock()
            DispatchQueue.global().async { handler(packets) }
            return
        }
        inbound.append(packets)
        cond.unlock()
    }

    func writePackets(_ packets: [Data]) {
        cond.lock()
        written.append(packets)
        cond.broadcast()
        cond.unlock()
    }

    /// Waits until `count` packets were written towards the apps; returns the batches.
    func waitForWritten(_ count: Int, timeout: TimeInterval = 10) -> [[Data]] {
        let deadline = Date().addingTimeInterval(timeout)
        cond.lock()
        defer { cond.unlock() }
        while written.reduce(0, { $0 + $1.count }) < count, cond.wait(until: deadline) {}
        return written
    }
}

final class CoreTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("embargokit-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    func open() throws -> (Embargo, AppGroup) {
        let group = AppGroup(container: dir)
        try group.prepare()
        let embargo = try Embargo(config: Settings().config(), storageDir: group.storageDirectory.path)
        return (embargo, group)
    }

    func testTheLibraryLoads() {
        XCTAssertFalse(libraryVersion().isEmpty)
    }

    func testABlockedQuestionIsAnsweredInABatchAndRecordedAsByteDance() throws {
        // The two processes' cores: the extension's runs the tunnel and writes the history,
        // the app's reads it (read-only, never blocking the writer).
        let group = AppGroup(container: dir)
        let app = try group.openAppCore(config: Settings().config())
        let embargo = try group.openTunnelCore(config: Settings().config())
        let flow = FakeFlow()
        let bridge = TunnelBridge(embargo: embargo, flow: flow)
        try bridge.start()
        defer { try? bridge.stop() }

        // Two batches as readPackets hands them: ten questions, then one.
        let names = (0..<10).map { _ in "log.tiktokv.com" }
        flow.send(names.enumerated().map { i, name in Packets.dnsQuestion(name, id: UInt16(i + 1), sourcePort: 40000 + UInt16(i)) })
        flow.send([Packets.dnsQuestion("mon.tiktokv.com", id: 99, sourcePort: 41000)])
        let batches = flow.waitForWritten(11)
        let answers = batches.flatMap { $0 }
        XCTAssertEqual(answers.count, 11, "answers: \(answers.count) in \(batches.count) batches")
        XCTAssertLessThan(batches.count, 11, "answers come in batches, not one call each")
        for answer in answers {
            XCTAssertEqual(try Packets.dnsAnswerAddresses(answer), ["0.0.0.0"])
        }
        XCTAssertEqual(bridge.dropped, 0)
        let status = try embargo.status()
        XCTAssertEqual(status.state, .running)
        XCTAssertEqual(status.dnsBlocked, 11)

        // The history the app reads: one coalesced row per name, owned by ByteDance.
        try embargo.flushHistory()
        let history = HistoryModel(embargo: app, pageSize: 1)
        try history.apply(HistoryFilter(search: "TIKTOKV", verdict: .block))
        XCTAssertEqual(history.rows.count, 1)
        XCTAssertTrue(history.hasMore)
        try history.loadMore()
        try history.loadMore()
        XCTAssertFalse(history.hasMore)
        XCTAssertEqual(Set(history.rows.compactMap(\.name)), ["log.tiktokv.com", "mon.tiktokv.com"])
        let log = try XCTUnwrap(history.rows.first { $0.name == "log.tiktokv.com" })
        XCTAssertEqual(log.count, 10)
        XCTAssertEqual(log.list, "builtin")
        XCTAssertTrue(log.owner?.contains("ByteDance") == true, "owner: \(String(describing: log.owner))")
        let text = HistoryFormatter().text(log)
        XCTAssertTrue(text.detail.hasPrefix("ByteDance"), text.detail)
        XCTAssertEqual(text.verdict, "Blocked by builtin")
        let csv = dir.appendingPathComponent("export.csv")
        XCTAssertEqual(try history.exportCSV(to: csv), 2, "every row, not the one loaded page")
        XCTAssertTrue(try String(contentsOf: csv, encoding: .utf8).contains("log.tiktokv.com"))

        // A search that matches nothing.
        try history.apply(HistoryFilter(search: "example.org"))
        XCTAssertEqual(history.rows, [])
        XCTAssertFalse(history.hasMore)

        // Home: today's counts by company and country.
        let home = try HomeModel(embargo: embargo).load()
        XCTAssertTrue(home.running)
        XCTAssertEqual(home.blockedToday, 11)
        XCTAssertTrue(home.owners.first?.key.contains("ByteDance") == true, "\(home.owners)")
        let week = try HomeModel(embargo: embargo).days()
        XCTAssertEqual(week.count, 1, "\(week)")
        XCTAssertEqual(week.last?.blocked, 11)
        XCTAssertEqual(week.last?.date.count, 10, "YYYY-MM-DD")

        // The database is in the App Group container, where the app reads it and writes
        // nothing: hiding rows is the extension's to do.
        XCTAssertTrue(FileManager.default.fileExists(atPath: group.historyDatabase.path))
        XCTAssertThrowsError(try app.hide(entry: .name(name: "log.tiktokv.com"))) { error in
            XCTAssertTrue("\(error)".contains("only reads the history"), "\(error)")
        }
    }

    func testPushingWithoutATunnelIsAStateError() throws {
        let (embargo, _) = try open()
        XCTAssertThrowsError(try embargo.pushPackets(packets: [Packets.dnsQuestion("a.example", id: 1, sourcePort: 1)])) { error in
            guard case EmbargoError.State = error else { return XCTFail("\(error)") }
        }
    }
}
