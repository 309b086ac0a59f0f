import EmbargoFFI
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

/// The extension's answer to `.status` is the core's own byte form of its status
/// (`encodeTunnelStatus`), which the app reads with `decodeTunnelStatus`: one encoding, defined
/// beside the type it encodes.
public enum ProviderStatus {
    public static func encode(_ status: TunnelStatus) -> Data {
        encodeTunnelStatus(status: status)
    }

    public static func decode(_ data: Data) throws -> TunnelStatus {
        try decodeTunnelStatus(bytes: data)
    }
}
