import EmbargoFFI
import Foundation

/// The core in each of the two processes over one App Group container. The app changes lists
/// and compiles the rules into the storage directory (`rules.compiled`); the extension, killed
/// past 50 MiB, maps them and never parses a list (`ProcessRole.tunnel`).
extension AppGroup {
    /// The app's core. Compiles the rules at once, so an extension started before any change
    /// finds a current file.
    public func openAppCore(config: EmbargoConfig) throws -> Embargo {
        try prepare()
        let embargo = try Embargo.withRole(config: config, storageDir: storageDirectory.path, role: .app)
        _ = try embargo.compileRules()
        return embargo
    }

    /// The extension's core, over the rules the app compiled. Throws, naming the file, when
    /// they are missing, stale or of another version: the app has not compiled since the
    /// lists changed.
    public func openTunnelCore(config: EmbargoConfig) throws -> Embargo {
        try prepare()
        return try Embargo.withRole(config: config, storageDir: storageDirectory.path, role: .tunnel)
    }
}

extension Embargo {
    /// After a change of lists or of the embargo level in the app: compiles the rules for the
    /// extension (which then reloads on `ProviderMessage.reload`). Nothing to do in a
    /// single-process core.
    public func rulesChanged() throws {
        if role() == .app {
            _ = try compileRules()
        }
    }
}

extension Embargo {
    /// What the extension does on `ProviderMessage.reload`: takes the app's saved settings
    /// (those a running tunnel can take apply at once), then maps the rules the app compiled.
    /// Returns the names of the changed settings that wait for the tunnel's next start (the
    /// resolver, the history's retention; the MTU and tunnel addresses are the provider's own
    /// and also change only at a start).
    public func reloadFromApp(settingsFile: URL) throws -> [String] {
        let settings = try SettingsStore(file: settingsFile).load()
        let waiting = try applySettings(config: settings.config())
        try reload()
        return waiting
    }
}
