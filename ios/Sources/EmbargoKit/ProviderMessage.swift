import Foundation

/// Messages from the app to the extension (`NETunnelProviderSession.sendProviderMessage`) and
/// their answers, as JSON: both sides are built from this one type, so they cannot disagree.
public enum ProviderMessage: Codable, Equatable, Sendable {
    /// Settings or lists changed in the App Group container: reload them without a restart.
    case reload
    /// Ask for the tunnel's counters.
    case status

    public func encoded() throws -> Data { try JSONEncoder().encode(self) }

    public static func decode(_ data: Data) throws -> ProviderMessage {
        try JSONDecoder().decode(ProviderMessage.self, from: data)
    }
}

/// The extension's answer to `.status`.
public struct ProviderStatus: Codable, Equatable, Sendable {
    public var running: Bool
    public var packetsIn: UInt64
    public var packetsOut: UInt64
    public var dnsBlocked: UInt64
    public var flowsBlocked: UInt64
    public var memoryBytes: UInt64

    public init(running: Bool, packetsIn: UInt64, packetsOut: UInt64, dnsBlocked: UInt64, flowsBlocked: UInt64, memoryBytes: UInt64) {
        self.running = running
        self.packetsIn = packetsIn
        self.packetsOut = packetsOut
        self.dnsBlocked = dnsBlocked
        self.flowsBlocked = flowsBlocked
        self.memoryBytes = memoryBytes
    }
}
