import Foundation

/// Where the app and the packet tunnel extension keep their shared state: one App Group
/// container. The extension alone writes the history (SQLite in WAL mode, so the app reads
/// while it writes); the app writes settings and lists, and tells the extension to reload.
public struct AppGroup: Equatable, Sendable {
    /// The App Group both targets are entitled to (project.yml, the .entitlements files).
    public static let identifier = "group.org.embargo.shared"

    /// The container's root.
    public let container: URL

    public init(container: URL) {
        self.container = container
    }

    #if os(iOS) || os(macOS)
    /// The container of `identifier`, or nil when the target lacks the entitlement.
    public static func shared(identifier: String = AppGroup.identifier) -> AppGroup? {
        FileManager.default
            .containerURL(forSecurityApplicationGroupIdentifier: identifier)
            .map(AppGroup.init(container:))
    }
    #endif

    /// The core's storage directory (`Embargo(config:storageDir:)`): rules, compiled lists,
    /// the history database.
    public var storageDirectory: URL { container.appendingPathComponent("embargo", isDirectory: true) }

    /// The history database the extension writes and the app reads.
    public var historyDatabase: URL { storageDirectory.appendingPathComponent("history.db") }

    /// The app's settings (`SettingsStore`), read by the extension at start and on reload.
    public var settingsFile: URL { container.appendingPathComponent("settings.json") }

    /// Creates the directories. Both processes call it; it is idempotent.
    public func prepare() throws {
        try FileManager.default.createDirectory(at: storageDirectory, withIntermediateDirectories: true)
    }
}
