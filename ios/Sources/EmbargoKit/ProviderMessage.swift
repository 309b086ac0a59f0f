import EmbargoFFI
import Foundation

/// Messages from the app to the extension (`NETunnelProviderSession.sendProviderMessage`) and
/// their answers, as JSON: both sides are built from this one type, so they cannot disagree.
public enum ProviderMessage: Codable, Equatable, Sendable {
    /// Settings or lists changed in the App Group container: reload them without a restart.
    case reload
    /// Ask for the tunnel's counters.
    case status
    /// Ask for the live events queued since the last ask (answered by `ProviderEvents`).
    case events

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

/// The extension's answer to `.events`: the queued live events, each in the core's versioned
/// byte form (`encodeLiveEvent`), framed by a 4-byte big-endian length. A short frame or an
/// event of an unknown version is an error saying so, never a crash.
public enum ProviderEvents {
    /// At most this many events per answer (a provider message's answer should stay small).
    public static let maxPerAnswer = 256

    public static func encode(_ events: [LiveEvent]) -> Data {
        var out = Data()
        for event in events {
            let bytes = encodeLiveEvent(event: event)
            var length = UInt32(bytes.count).bigEndian
            withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
            out.append(bytes)
        }
        return out
    }

    public static func decode(_ data: Data) throws -> [LiveEvent] {
        var events: [LiveEvent] = []
        var at = data.startIndex
        while at < data.endIndex {
            guard data.endIndex - at >= 4 else {
                throw EmbargoError.InvalidInput(message: "live events: \(data.endIndex - at) bytes left, short of a frame length")
            }
            let length = data[at..<at + 4].reduce(0) { $0 << 8 | Int($1) }
            at += 4
            guard data.endIndex - at >= length else {
                throw EmbargoError.InvalidInput(message: "live events: a frame of \(length) bytes, \(data.endIndex - at) left")
            }
            events.append(try decodeLiveEvent(bytes: Data(data[at..<at + length])))
            at += length
        }
        return events
    }

    /// What the extension answers `.events` with: the events waiting in its core.
    public static func drain(_ embargo: Embargo) -> Data {
        var events: [LiveEvent] = []
        while events.count < maxPerAnswer, let event = embargo.tryNextEvent() {
            events.append(event)
        }
        return encode(events)
    }
}
