import EmbargoFFI
import Foundation

/// The settings the Settings screen edits and the extension starts with.
public struct Settings: Codable, Equatable, Sendable {
    /// Resolver the tunnel forwards allowed questions to: `ip[:port]` (plain DNS), or an
    /// encrypted server, `tls://NAME@IP[:PORT]` (DNS over TLS) or
    /// `https://NAME@IP[:PORT]/dns-query` (DNS over HTTPS), NAME checked against its
    /// certificate.
    public var dnsUpstream: String = "9.9.9.9:53"
    /// Keep allowed connections in the history too (more writes, more rows).
    public var recordAllowed: Bool = true
    /// Days of history kept.
    public var historyRetentionDays: UInt32 = 30
    /// Refuse DNS over HTTPS/TLS to known resolvers, so that questions stay readable.
    public var blockEncryptedDns: Bool = true
    /// Keep the tunnel up across restarts and network changes (on-demand rules).
    public var onDemand: Bool = true
    /// The tunnel's MTU: `NEPacketTunnelNetworkSettings.mtu` and the core's packets alike.
    /// Larger moves bulk data with fewer packets (and fewer packet-flow crossings).
    public var mtu: UInt32 = EmbargoConfig().mtu

    public init() {}

    private enum CodingKeys: String, CodingKey {
        case dnsUpstream, recordAllowed, historyRetentionDays, blockEncryptedDns, onDemand, mtu
    }

    /// Every field required but `mtu`, which settings saved before it existed lack.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        dnsUpstream = try c.decode(String.self, forKey: .dnsUpstream)
        recordAllowed = try c.decode(Bool.self, forKey: .recordAllowed)
        historyRetentionDays = try c.decode(UInt32.self, forKey: .historyRetentionDays)
        blockEncryptedDns = try c.decode(Bool.self, forKey: .blockEncryptedDns)
        onDemand = try c.decode(Bool.self, forKey: .onDemand)
        mtu = try c.decodeIfPresent(UInt32.self, forKey: .mtu) ?? EmbargoConfig().mtu
    }

    /// Whether `text` names an encrypted DNS server (`tls://`, `https://`), as Android's
    /// Lists screen tells them: it goes to the core's `dnsUpstreams`, plain ones to
    /// `dnsUpstream`.
    public static func isEncryptedDns(_ text: String) -> Bool {
        text.hasPrefix("tls://") || text.hasPrefix("https://")
    }

    /// Checks these settings with the core, as the extension's start does: the error names
    /// the value at fault (a server without `NAME@`, an address that is not one).
    public func validate() throws {
        try checkConfig(config: config())
    }

    /// The core's configuration for these settings.
    public func config() -> EmbargoConfig {
        var config = EmbargoConfig()
        if Self.isEncryptedDns(dnsUpstream) {
            config.dnsUpstreams = [dnsUpstream]
        } else {
            config.dnsUpstream = dnsUpstream
        }
        config.recordAllowed = recordAllowed
        config.historyRetentionDays = historyRetentionDays
        config.blockEncryptedDns = blockEncryptedDns
        config.mtu = mtu
        return config
    }
}

/// A settings file that cannot be read, naming the file and what is wrong with it.
public struct SettingsError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let problem: String
    public var description: String { "\(file): \(problem)" }
}

/// Settings persisted as JSON in the App Group container. Written atomically by the app;
/// read by the extension.
public struct SettingsStore: Sendable {
    public let file: URL

    public init(file: URL) {
        self.file = file
    }

    /// The saved settings; the defaults when nothing was saved yet.
    public func load() throws -> Settings {
        guard FileManager.default.fileExists(atPath: file.path) else { return Settings() }
        let data: Data
        do {
            data = try Data(contentsOf: file)
        } catch {
            throw SettingsError(file: file.path, problem: "cannot read: \(error.localizedDescription)")
        }
        do {
            return try JSONDecoder().decode(Settings.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw SettingsError(file: file.path, problem: "missing field \(key.stringValue)")
        } catch let DecodingError.typeMismatch(_, context) {
            throw SettingsError(file: file.path, problem: "wrong type at \(Self.path(context))")
        } catch let DecodingError.valueNotFound(_, context) {
            throw SettingsError(file: file.path, problem: "null at \(Self.path(context))")
        } catch {
            throw SettingsError(file: file.path, problem: "not valid settings JSON")
        }
    }

    /// Saves atomically (a reader never sees half a file).
    public func save(_ settings: Settings) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(settings).write(to: file, options: .atomic)
    }

    private static func path(_ context: DecodingError.Context) -> String {
        let keys = context.codingPath.map(\.stringValue)
        return keys.isEmpty ? "the top level" : keys.joined(separator: ".")
    }
}
