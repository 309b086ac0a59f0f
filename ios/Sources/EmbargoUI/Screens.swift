// The app's SwiftUI screens, thin over EmbargoKit's models. Apple-only; on Linux this file is
// parsed and compiles to nothing.
#if canImport(SwiftUI) && canImport(NetworkExtension)
import EmbargoFFI
import EmbargoKit
import NetworkExtension
import SwiftUI

/// Holds the app's core (reading the history the extension writes) and the models.
@MainActor
public final class AppState: ObservableObject {
    public let group: AppGroup
    public let embargo: Embargo
    @Published public var home: HomeState?
    @Published public var error: String?
    public let history: HistoryModel

    public init() throws {
        guard let group = AppGroup.shared() else { throw SettingsError(file: AppGroup.identifier, problem: "App Group not entitled") }
        try group.prepare()
        let settings = try SettingsStore(file: group.settingsFile).load()
        self.group = group
        embargo = try Embargo(config: settings.config(), storageDir: group.storageDirectory.path)
        history = HistoryModel(embargo: embargo)
    }

    public func refresh() {
        do {
            home = try HomeModel(embargo: embargo).load()
        } catch {
            self.error = String(describing: error)
        }
    }

    /// Turns the tunnel on or off. On: saves a tunnel configuration for the extension with an
    /// on-demand rule (when the settings ask for it), so iOS brings it back after a restart.
    public func setEnabled(_ on: Bool) async {
        do {
            let managers = try await NETunnelProviderManager.loadAllFromPreferences()
            let manager = managers.first ?? NETunnelProviderManager()
            if on {
                let proto = NETunnelProviderProtocol()
                proto.providerBundleIdentifier = (Bundle.main.bundleIdentifier ?? "org.embargo.Embargo") + ".PacketTunnel"
                proto.serverAddress = "Embargo (on device)"
                manager.protocolConfiguration = proto
                manager.localizedDescription = "Embargo"
                let settings = try SettingsStore(file: group.settingsFile).load()
                manager.onDemandRules = settings.onDemand ? [NEOnDemandRuleConnect()] : []
                manager.isOnDemandEnabled = settings.onDemand
                manager.isEnabled = true
                try await manager.saveToPreferences()
                try await manager.loadFromPreferences()
                try manager.connection.startVPNTunnel()
            } else {
                manager.isOnDemandEnabled = false
                try await manager.saveToPreferences()
                manager.connection.stopVPNTunnel()
            }
        } catch {
            self.error = String(describing: error)
        }
    }

    /// Tells the extension that settings or lists changed.
    public func sendReload() async {
        guard let managers = try? await NETunnelProviderManager.loadAllFromPreferences(),
              let session = managers.first?.connection as? NETunnelProviderSession,
              let message = try? ProviderMessage.reload.encoded() else { return }
        try? session.sendProviderMessage(message) { _ in }
    }
}

public struct RootView: View {
    @ObservedObject var state: AppState

    public init(state: AppState) { self.state = state }

    public var body: some View {
        TabView {
            HomeView(state: state).tabItem { Label("Home", systemImage: "shield") }
            TallyView(title: "Companies", tallies: state.home?.owners ?? []).tabItem { Label("Companies", systemImage: "building.2") }
            TallyView(title: "Countries", tallies: state.home?.countries ?? []).tabItem { Label("Countries", systemImage: "globe") }
            HistoryView(model: state.history).tabItem { Label("History", systemImage: "clock") }
        }
        .onAppear { state.refresh() }
    }
}

struct HomeView: View {
    @ObservedObject var state: AppState

    var body: some View {
        List {
            if let home = state.home {
                Section {
                    Toggle("Embargo", isOn: Binding(
                        get: { home.running },
                        set: { on in Task { await state.setEnabled(on); state.refresh() } }
                    ))
                    Text("Blocked today: \(home.blockedToday)")
                    Text("Allowed today: \(home.allowedToday)")
                }
                Section("Companies today") {
                    ForEach(home.owners.prefix(5)) { t in
                        HStack { Text(t.key); Spacer(); Text("\(t.blocked) blocked") }
                    }
                }
            }
            if let error = state.error { Text(error).foregroundStyle(.red) }
        }
        .refreshable { state.refresh() }
    }
}

/// Companies or Countries. iOS does not say which app made a connection, so blocking is per
/// company or country for every app, and the screen says so.
struct TallyView: View {
    let title: String
    let tallies: [Tally]

    var body: some View {
        NavigationStack {
            List {
                Text("iOS does not tell which app made a connection: a choice here applies to every app.")
                    .font(.footnote)
                ForEach(tallies) { t in
                    HStack { Text(t.key); Spacer(); Text("\(t.blocked) / \(t.allowed)") }
                }
            }
            .navigationTitle(title)
        }
    }
}

struct HistoryView: View {
    let model: HistoryModel
    @State private var search = ""
    @State private var rows: [HistoryRowText] = []
    private let formatter = HistoryFormatter()

    var body: some View {
        NavigationStack {
            List(rows.indices, id: \.self) { i in
                VStack(alignment: .leading) {
                    Text(rows[i].title)
                    Text("\(rows[i].detail) · \(rows[i].verdict) \(rows[i].repeats)").font(.caption)
                }
                .onAppear {
                    if i == rows.count - 1 { try? model.loadMore(); reload(keepFilter: true) }
                }
            }
            .searchable(text: $search)
            .onChange(of: search) { _ in apply() }
            .onAppear { apply() }
            .navigationTitle("History")
        }
    }

    private func apply() {
        try? model.apply(HistoryFilter(search: search))
        reload(keepFilter: true)
    }

    private func reload(keepFilter: Bool) {
        rows = model.rows.map(formatter.text)
    }
}
#endif
