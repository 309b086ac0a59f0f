import EmbargoFFI
@testable import EmbargoKit
import Foundation
import XCTest

/// Companies and Countries: choices become an Embargo-format list the real core decides with.
final class ChoicesTests: XCTestCase {
    func testBlockingAndAllowingACountryAndACompanyChangesTheCoresVerdict() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("choices-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let group = AppGroup(container: dir)
        try group.prepare()
        let embargo = try Embargo(config: EmbargoConfig(), storageDir: group.storageDirectory.path)
        let file = group.container.appendingPathComponent("choices.json")
        let choices = try NetworkChoices(embargo: embargo, file: file)

        // 114.114.114.114 is in China in the bundled country database.
        XCTAssertEqual(try embargo.check(target: "114.114.114.114", app: nil).verdict, .allow)
        try choices.set(country: "cn", .block)
        let blocked = try embargo.check(target: "114.114.114.114", app: nil)
        XCTAssertEqual(blocked.verdict, .block, blocked.explanation)
        try choices.set(country: "CN", nil)
        XCTAssertEqual(try embargo.check(target: "114.114.114.114", app: nil).verdict, .allow)

        // 223.5.5.5 is Alibaba Cloud's.
        try choices.set(owner: "Alibaba", .block)
        XCTAssertEqual(try embargo.check(target: "223.5.5.5", app: nil).verdict, .block)
        XCTAssertEqual(choices.listText(), "# Written by the Embargo app (Companies and Countries).\nowner: Alibaba\n")

        // Saved in the container: a second reader (the extension) sees the same choices.
        let again = try NetworkChoices(embargo: embargo, file: file)
        XCTAssertEqual(again.owner("Alibaba"), .block)
        XCTAssertNil(again.country("CN"))

        XCTAssertThrowsError(try choices.set(country: "CHN", .block)) { error in
            XCTAssertTrue("\(error)".contains("CHN"), "\(error)")
        }
    }

    /// App and extension are two processes over one storage directory: the app compiles the
    /// rules, the extension maps them (no list text needed) and sees the app's choice after
    /// `reload()` (what the `.reload` provider message triggers).
    func testTheExtensionMapsTheRulesTheAppCompiled() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("reload-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let group = AppGroup(container: dir)
        try group.prepare()
        XCTAssertThrowsError(try group.openTunnelCore(config: EmbargoConfig())) { error in
            XCTAssertTrue("\(error)".contains("rules.compiled"), "\(error)")
        }
        let appSide = try group.openAppCore(config: EmbargoConfig())
        XCTAssertEqual(appSide.role(), .app)
        let extensionSide = try group.openTunnelCore(config: EmbargoConfig())
        XCTAssertEqual(extensionSide.role(), .tunnel)
        let choices = try NetworkChoices(embargo: appSide, file: group.container.appendingPathComponent("choices.json"))
        try choices.set(country: "CN", .block)
        XCTAssertEqual(try extensionSide.check(target: "114.114.114.114", app: nil).verdict, .allow)
        XCTAssertEqual(try ProviderMessage.decode(ProviderMessage.reload.encoded()), .reload)
        // The lists' text is not needed where the rules are mapped.
        try FileManager.default.removeItem(at: group.storageDirectory.appendingPathComponent("lists"))
        try extensionSide.reload()
        XCTAssertEqual(try extensionSide.check(target: "114.114.114.114", app: nil).verdict, .block)
        XCTAssertEqual(try extensionSide.check(target: "log.tiktokv.com", app: nil).verdict, .block)
        // Lists change in the app only.
        XCTAssertThrowsError(try extensionSide.setListEnabled(name: NetworkChoices.listName, enabled: false)) { error in
            XCTAssertTrue("\(error)".contains("rules.compiled"), "\(error)")
        }
        // A change the app has not compiled is refused by name, and the rules in force stay.
        try appSide.setListEnabled(name: NetworkChoices.listName, enabled: false)
        XCTAssertThrowsError(try extensionSide.reload()) { error in
            XCTAssertTrue("\(error)".contains("stale"), "\(error)")
        }
        XCTAssertEqual(try extensionSide.check(target: "114.114.114.114", app: nil).verdict, .block)
        try appSide.rulesChanged()
        try extensionSide.reload()
        XCTAssertEqual(try extensionSide.check(target: "114.114.114.114", app: nil).verdict, .allow)
    }

    /// The reload message also takes the app's saved settings: what a running tunnel can take
    /// applies at once, the rest is named for the next start.
    func testTheExtensionTakesTheAppsSettingsOnReload() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("settings-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let group = AppGroup(container: dir)
        _ = try group.openAppCore(config: Settings().config())
        let tunnel = try group.openTunnelCore(config: Settings().config())
        XCTAssertEqual(try tunnel.reloadFromApp(settingsFile: group.settingsFile), [])
        var settings = Settings()
        settings.recordAllowed = false
        settings.blockEncryptedDns = false
        settings.dnsUpstream = "tls://dns.example@192.0.2.1"
        try SettingsStore(file: group.settingsFile).save(settings)
        XCTAssertEqual(try tunnel.reloadFromApp(settingsFile: group.settingsFile), ["dns_upstreams"])
        XCTAssertEqual(try tunnel.reloadFromApp(settingsFile: group.settingsFile), [], "taken")
    }
}
