import EmbargoFFI
import Foundation

/// The packet side of the tunnel as `NEPacketTunnelFlow` offers it: arrays of packets each way.
/// The extension adapts its flow to this; tests drive it without NetworkExtension.
public protocol PacketFlow: AnyObject {
    /// Calls `handler` once with the next packets the apps sent (the flow re-arms per call).
    func readPackets(_ handler: @escaping ([Data]) -> Void)
    /// Writes packets towards the apps.
    func writePackets(_ packets: [Data])
}

/// Runs the core on a `PacketFlow`: what comes from the apps goes to `pushPackets` a batch at a
/// time, and the core's batches go to `writePackets`. One FFI call per batch each way.
public final class TunnelBridge {
    let embargo: Embargo
    let flow: PacketFlow
    private let lock = NSLock()
    private var running = false
    /// Packets the core's queue refused (it was full).
    public private(set) var dropped: UInt64 = 0

    public init(embargo: Embargo, flow: PacketFlow) {
        self.embargo = embargo
        self.flow = flow
    }

    /// Starts the core and the read loop.
    public func start() throws {
        try embargo.startWithPacketBatches(sink: FlowSink(flow: flow), hooks: ApplePlatformHooks())
        lock.lock()
        running = true
        lock.unlock()
        readNext()
    }

    /// Stops the core; the pending read's packets, if any come, are dropped.
    public func stop() throws {
        lock.lock()
        running = false
        lock.unlock()
        try embargo.stop()
    }

    private func readNext() {
        flow.readPackets { [weak self] packets in
            guard let self else { return }
            self.lock.lock()
            let running = self.running
            self.lock.unlock()
            guard running else { return }
            if !packets.isEmpty, let queued = try? self.embargo.pushPackets(packets: packets) {
                self.lock.lock()
                self.dropped += UInt64(packets.count) - UInt64(queued)
                self.lock.unlock()
            }
            self.readNext()
        }
    }
}

/// The core's batches, written to the flow (from the core's thread: `NEPacketTunnelFlow` takes
/// writes from any thread).
final class FlowSink: PacketBatchSink, @unchecked Sendable {
    let flow: PacketFlow
    init(flow: PacketFlow) { self.flow = flow }
    func writePackets(packets: [Data]) throws {
        flow.writePackets(packets)
    }
}

/// iOS's answers to the core's questions: protect is a no-op (a packet tunnel extension's own
/// sockets bypass its tunnel), and no API says which app a flow belongs to.
public final class ApplePlatformHooks: PlatformHooks, Sendable {
    public init() {}
    public func protect(fd: Int32) throws {}
    public func appOwner(protocol: EmbargoFFI.`Protocol`, src: String, dst: String) throws -> String? { nil }
}
