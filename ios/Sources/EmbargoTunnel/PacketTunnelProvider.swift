// The packet tunnel extension's provider: thin over EmbargoKit. Apple-only (NetworkExtension);
// on Linux this file is parsed and compiles to nothing.
#if canImport(NetworkExtension)
import EmbargoFFI
import EmbargoKit
import Foundation
import NetworkExtension
import os

/// `NSExtensionPrincipalClass` of the extension (PacketTunnel/Info.plist).
open class PacketTunnelProvider: NEPacketTunnelProvider {
    private var embargo: Embargo?
    private var bridge: TunnelBridge?
    private let log = Logger(subsystem: "org.embargo", category: "tunnel")

    override open func startTunnel(options: [String: NSObject]?, completionHandler: @escaping (Error?) -> Void) {
        do {
            guard let group = AppGroup.shared() else {
                throw NEVPNError(.configurationInvalid)
            }
            try group.prepare()
            let settings = try SettingsStore(file: group.settingsFile).load()
            // The storage directory is the app's too: the rules the app compiled, mapped here
            // (no list is parsed inside the 50 MiB cap), and the history the app reads.
            let config = settings.config()
            let embargo = try group.openTunnelCore(config: config)
            let network = NEPacketTunnelNetworkSettings(tunnelRemoteAddress: "127.0.0.1")
            let ipv4 = NEIPv4Settings(addresses: ["10.111.0.2"], subnetMasks: ["255.255.255.0"])
            ipv4.includedRoutes = [NEIPv4Route.default()]
            network.ipv4Settings = ipv4
            let ipv6 = NEIPv6Settings(addresses: ["fd00:e6b::2"], networkPrefixLengths: [64])
            ipv6.includedRoutes = [NEIPv6Route.default()]
            network.ipv6Settings = ipv6
            network.dnsSettings = NEDNSSettings(servers: ["10.111.0.1"])
            // The same MTU the core was given: the system cuts the apps' packets to it.
            network.mtu = NSNumber(value: config.mtu)
            setTunnelNetworkSettings(network) { [weak self] error in
                guard let self else { return }
                if let error {
                    completionHandler(error)
                    return
                }
                do {
                    let bridge = TunnelBridge(embargo: embargo, flow: FlowAdapter(self.packetFlow))
                    try bridge.start()
                    self.embargo = embargo
                    self.bridge = bridge
                    completionHandler(nil)
                } catch {
                    self.log.error("start failed: \(String(describing: error), privacy: .public)")
                    completionHandler(error)
                }
            }
        } catch {
            log.error("start failed: \(String(describing: error), privacy: .public)")
            completionHandler(error)
        }
    }

    override open func stopTunnel(with reason: NEProviderStopReason, completionHandler: @escaping () -> Void) {
        try? bridge?.stop()
        try? embargo?.shutdown()
        bridge = nil
        embargo = nil
        completionHandler()
    }

    override open func handleAppMessage(_ messageData: Data, completionHandler: ((Data?) -> Void)?) {
        guard let message = try? ProviderMessage.decode(messageData), let embargo else {
            completionHandler?(nil)
            return
        }
        switch message {
        case .reload:
            // The app changed settings, lists or choices in the shared container and
            // compiled the rules: take them without restarting the tunnel (the settings that
            // need a start are logged). A failure (a stale file) keeps the rules in force.
            do {
                guard let group = AppGroup.shared() else { throw NEVPNError(.configurationInvalid) }
                let waiting = try embargo.reloadFromApp(settingsFile: group.settingsFile)
                if !waiting.isEmpty {
                    log.info("settings for the next start: \(waiting.joined(separator: ", "), privacy: .public)")
                }
                completionHandler?(nil)
            } catch {
                completionHandler?(Data("failed: \(error)".utf8))
            }
        case .status:
            completionHandler?((try? embargo.status()).map(ProviderStatus.encode))
        case .events:
            completionHandler?(ProviderEvents.drain(embargo))
        }
    }
}

/// NEPacketTunnelFlow as EmbargoKit's PacketFlow.
final class FlowAdapter: PacketFlow {
    let flow: NEPacketTunnelFlow
    init(_ flow: NEPacketTunnelFlow) { self.flow = flow }

    func readPackets(_ handler: @escaping ([Data]) -> Void) {
        flow.readPackets { packets, _ in handler(packets) }
    }

    func writePackets(_ packets: [Data]) {
        let protocols = packets.map { packet -> NSNumber in
            NSNumber(value: (packet.first.map { $0 >> 4 } == 6) ? AF_INET6 : AF_INET)
        }
        flow.writePackets(packets, withProtocols: protocols)
    }
}
#endif
