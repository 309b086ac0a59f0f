import EmbargoFFI
@testable import EmbargoKit
import Foundation
import XCTest

final class AppGroupTests: XCTestCase {
    func testPathsLiveInTheContainer() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        let group = AppGroup(container: root)
        XCTAssertEqual(group.storageDirectory.path, root.path + "/embargo")
        XCTAssertEqual(group.historyDatabase.lastPathComponent, "history.db")
        XCTAssertEqual(group.settingsFile.path, root.path + "/settings.json")
        try group.prepare()
        try group.prepare()
        var isDir: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: group.storageDirectory.path, isDirectory: &isDir))
        XCTAssertTrue(isDir.boolValue)
    }
}

final class SettingsTests: XCTestCase {
    func temp() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("settings-\(UUID().uuidString).json")
    }

    func testMissingFileGivesDefaultsAndSavedSettingsRoundTrip() throws {
        let store = SettingsStore(file: temp())
        XCTAssertEqual(try store.load(), Settings())
        var s = Settings()
        s.dnsUpstream = "1.1.1.1:53"
        s.recordAllowed = false
        try store.save(s)
        XCTAssertEqual(try store.load(), s)
        let config = s.config()
        XCTAssertEqual(config.dnsUpstream, "1.1.1.1:53")
        XCTAssertFalse(config.recordAllowed)
        XCTAssertTrue(config.useBuiltinRules)
    }

    func testTheMtuReachesTheCoreAndOlderFilesGetTheDefault() throws {
        var s = Settings()
        XCTAssertEqual(s.mtu, EmbargoConfig().mtu)
        s.mtu = 9000
        XCTAssertEqual(s.config().mtu, 9000)
        // Settings saved before the MTU existed still load, with the core's default.
        let file = temp()
        try Data(#"{"dnsUpstream": "1.1.1.1:53", "recordAllowed": true, "historyRetentionDays": 7, "blockEncryptedDns": true, "onDemand": false}"#.utf8).write(to: file)
        let loaded = try SettingsStore(file: file).load()
        XCTAssertEqual(loaded.mtu, EmbargoConfig().mtu)
        XCTAssertEqual(loaded.historyRetentionDays, 7)
    }

    func testBadFileNamesTheFileAndTheField() throws {
        let file = temp()
        let store = SettingsStore(file: file)
        try Data(#"{"dnsUpstream": 53}"#.utf8).write(to: file)
        XCTAssertThrowsError(try store.load()) { error in
            let e = error as! SettingsError
            XCTAssertEqual(e.file, file.path)
            XCTAssertTrue(e.problem.contains("dnsUpstream"), e.problem)
        }
        try Data("not json".utf8).write(to: file)
        XCTAssertThrowsError(try store.load()) { error in
            XCTAssertTrue("\(error)".hasPrefix(file.path), "\(error)")
        }
    }

    /// An encrypted DNS server as the upstream (as on Android): told apart by its scheme,
    /// handed to the core's `dnsUpstreams`, and checked by the core before saving.
    func testEncryptedDnsUpstreamIsCheckedByTheCore() throws {
        var settings = Settings()
        for server in ["tls://dns.example@192.0.2.1", "https://dns.example@192.0.2.2/dns-query", "tls://dns.example@192.0.2.1:8853"] {
            settings.dnsUpstream = server
            XCTAssertTrue(Settings.isEncryptedDns(server))
            XCTAssertNoThrow(try settings.validate(), server)
            XCTAssertEqual(settings.config().dnsUpstreams, [server])
            XCTAssertEqual(settings.config().dnsUpstream, EmbargoConfig().dnsUpstream)
        }
        settings.dnsUpstream = "1.1.1.1"
        XCTAssertFalse(Settings.isEncryptedDns("1.1.1.1"))
        XCTAssertNoThrow(try settings.validate())
        XCTAssertEqual(settings.config().dnsUpstreams, [])
        XCTAssertEqual(settings.config().dnsUpstream, "1.1.1.1")
        for bad in ["tls://dns.example", "https://dns.example@192.0.2.2", "dns.example"] {
            settings.dnsUpstream = bad
            XCTAssertThrowsError(try settings.validate(), bad) { error in
                XCTAssertTrue("\(error)".contains(bad), "\(bad): \(error)")
            }
        }
    }
}

final class FormattingTests: XCTestCase {
    func record(name: String?, count: UInt64, verdict: Verdict) -> HistoryRecord {
        HistoryRecord(
            id: 1, firstSeenMs: 0, lastSeenMs: 3_723_000, count: count, app: nil, name: name,
            addr: "203.0.113.9", port: 443, protocol: .dns, verdict: verdict, rule: "tiktokv.com",
            list: "builtin", line: 12, owner: "ByteDance", ownerSource: "builtin", country: "SG",
            countrySource: nil, certainty: .certain, category: nil
        )
    }

    func testARowSaysWhatWhoWhereAndWhy() {
        let f = HistoryFormatter(timeZone: TimeZone(identifier: "UTC")!, locale: Locale(identifier: "en_US_POSIX"))
        let t = f.text(record(name: "log.tiktokv.com", count: 3, verdict: .block))
        XCTAssertEqual(t.title, "log.tiktokv.com")
        XCTAssertEqual(t.detail, "ByteDance · SG · DNS")
        XCTAssertEqual(t.verdict, "Blocked by builtin")
        XCTAssertEqual(t.repeats, "3×")
        XCTAssertEqual(t.time, "01:02:03")
        let bare = f.text(record(name: nil, count: 1, verdict: .allow))
        XCTAssertEqual(bare.title, "203.0.113.9:443")
        XCTAssertEqual(bare.verdict, "Allowed")
        XCTAssertEqual(bare.repeats, "")
    }

    func testBytes() {
        XCTAssertEqual(formatBytes(812), "812 B")
        XCTAssertEqual(formatBytes(1536), "1.5 KB")
        XCTAssertEqual(formatBytes(3 * 1024 * 1024 + 200 * 1024), "3.2 MB")
    }
}

final class SummariesTests: XCTestCase {
    func row(owner: String?, country: String?, blocked: UInt64, allowed: UInt64) -> AggregateRow {
        AggregateRow(day: nil, date: nil, app: nil, owner: owner, country: country, blocked: blocked, allowed: allowed)
    }

    func testMostBlockedFirstUnknownNamedAndMerged() {
        let rows = [
            row(owner: "Google", country: "US", blocked: 2, allowed: 9),
            row(owner: nil, country: nil, blocked: 1, allowed: 0),
            row(owner: "ByteDance", country: "SG", blocked: 5, allowed: 0),
            row(owner: "", country: "US", blocked: 1, allowed: 1),
        ]
        XCTAssertEqual(Summaries.byOwner(rows).map(\.key), ["ByteDance", "Google", "Unknown"])
        XCTAssertEqual(Summaries.byOwner(rows).last, Tally(key: "Unknown", blocked: 2, allowed: 1))
        XCTAssertEqual(Summaries.byCountry(rows).first, Tally(key: "SG", blocked: 5, allowed: 0))
        XCTAssertEqual(Summaries.byCountry(rows)[1], Tally(key: "US", blocked: 3, allowed: 10))
    }

    func testStartOfUTCDay() {
        XCTAssertEqual(Summaries.startOfUTCDay(Date(timeIntervalSince1970: 86_400 * 3 + 5_000)), 86_400_000 * 3)
    }
}

final class ProviderMessageTests: XCTestCase {
    func testRoundTrip() throws {
        for m in [ProviderMessage.reload, .status, .events] {
            XCTAssertEqual(try ProviderMessage.decode(try m.encoded()), m)
        }
        XCTAssertThrowsError(try ProviderMessage.decode(Data("{}".utf8)))
    }

    /// The status crosses from the extension to the app in the core's byte form.
    func testStatusCrossesInTheCoresEncoding() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("status-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let embargo = try Embargo(config: EmbargoConfig(), storageDir: dir.path)
        let status = try embargo.status()
        XCTAssertEqual(try ProviderStatus.decode(ProviderStatus.encode(status)), status)
        XCTAssertThrowsError(try ProviderStatus.decode(Data(#"{"state":"running"}"#.utf8))) { error in
            XCTAssertTrue("\(error)".contains("packets_in"), "\(error)")
        }
    }

    /// Live events cross from the extension to the app in the core's versioned byte form.
    func testLiveEventsCrossInTheCoresEncoding() throws {
        let events: [LiveEvent] = [
            .stateChanged(state: .failed, message: "tunnel failed: é"),
            .error(message: "packet sink failed"),
            .stateChanged(state: .running, message: nil),
        ]
        let data = ProviderEvents.encode(events)
        XCTAssertEqual(try ProviderEvents.decode(data), events)
        XCTAssertEqual(try decodeLiveEvent(bytes: encodeLiveEvent(event: events[0])), events[0])
        // Every truncation is an error (or, at a frame's end, the events before it), never a crash.
        let ends = Dictionary(uniqueKeysWithValues: (0...events.count).map {
            (ProviderEvents.encode(Array(events.prefix($0))).count, $0)
        })
        for length in 0..<data.count {
            let short = Data(data.prefix(length))
            if let whole = ends[length] {
                XCTAssertEqual(try ProviderEvents.decode(short), Array(events.prefix(whole)))
            } else {
                XCTAssertThrowsError(try ProviderEvents.decode(short), "\(length) bytes")
            }
        }
        XCTAssertEqual(try ProviderEvents.decode(Data()), [])
        XCTAssertThrowsError(try decodeLiveEvent(bytes: Data(#"{"version":2,"event":{}}"#.utf8))) { error in
            XCTAssertTrue("\(error)".contains("version 2"), "\(error)")
        }
    }
}
