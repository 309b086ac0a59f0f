// The extension target's principal class (NSExtensionPrincipalClass in project.yml): all of it
// lives in EmbargoTunnel, kept in the Swift package so that it is parsed on Linux too.
#if canImport(NetworkExtension)
import EmbargoTunnel

final class PacketTunnel: PacketTunnelProvider {}
#endif
