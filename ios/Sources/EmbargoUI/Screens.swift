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
    @Published public var week: [DayTally] = []
    @Published public var error: String?
    public let history: HistoryModel
    public let choices: NetworkChoices

    public init() throws {
        guard let group = AppGroup.shared() else { throw SettingsError(file: AppGroup.identifier, problem: "App Group not entitled") }
        try group.prepare()
        let settings = try SettingsStore(file: group.settingsFile).load()
        self.group = group
        embargo = try group.openAppCore(config: settings.config())
        history = HistoryModel(embargo: embargo)
        choices = try NetworkChoices(embargo: embargo, file: group.container.appendingPathComponent("choices.json"))
    }

    /// Runs `body`, showing its error instead of throwing it.
    public func attempt(_ body: () throws -> Void) {
        do {
            try body()
            error = nil
        } catch {
            self.error = String(describing: error)
        }
        refresh()
    }

    public func refresh() {
        do {
            let model = HomeModel(embargo: embargo)
            home = try model.load()
            week = try model.days()
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
            TallyView(state: state, kind: .companies).tabItem { Label("Companies", systemImage: "building.2") }
            TallyView(state: state, kind: .countries).tabItem { Label("Countries", systemImage: "globe") }
            HistoryView(model: state.history).tabItem { Label("History", systemImage: "clock") }
            ListsView(state: state).tabItem { Label("Lists", systemImage: "list.bullet") }
            SettingsView(state: state).tabItem { Label("Settings", systemImage: "gear") }
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
                Section("This week") {
                    ForEach(state.week, id: \.date) { d in
                        HStack { Text(d.date); Spacer(); Text("\(d.blocked) blocked") }
                    }
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
    enum Kind { case companies, countries }
    @ObservedObject var state: AppState
    let kind: Kind

    private var tallies: [Tally] {
        kind == .companies ? state.home?.owners ?? [] : state.home?.countries ?? []
    }

    private func choice(_ key: String) -> NetworkChoices.Choice? {
        kind == .companies ? state.choices.owner(key) : state.choices.country(key)
    }

    private func set(_ key: String, _ choice: NetworkChoices.Choice?) {
        state.attempt {
            if kind == .companies {
                try state.choices.set(owner: key, choice)
            } else {
                try state.choices.set(country: key, choice)
            }
        }
        Task { await state.sendReload() }
    }

    var body: some View {
        NavigationStack {
            List {
                Text("iOS does not tell which app made a connection: a choice here applies to every app.")
                    .font(.footnote)
                ForEach(tallies) { t in
                    HStack {
                        VStack(alignment: .leading) {
                            Text(t.key)
                            Text("\(t.blocked) blocked, \(t.allowed) allowed today").font(.caption)
                        }
                        Spacer()
                        if t.key != Summaries.unknown {
                            Menu(choice(t.key).map { $0 == .block ? "Blocked" : "Allowed" } ?? "Default") {
                                Button("Block") { set(t.key, .block) }
                                Button("Allow") { set(t.key, .allow) }
                                Button("Default") { set(t.key, nil) }
                            }
                        }
                    }
                }
            }
            .navigationTitle(kind == .companies ? "Companies" : "Countries")
        }
    }
}

struct ListsView: View {
    @ObservedObject var state: AppState
    @State private var lists: [ListInfo] = []

    var body: some View {
        NavigationStack {
            List(lists, id: \.name) { list in
                Toggle(isOn: Binding(
                    get: { list.enabled },
                    set: { on in
                        state.attempt {
                            try state.embargo.setListEnabled(name: list.name, enabled: on)
                            try state.embargo.rulesChanged()
                        }
                        Task { await state.sendReload() }
                        reload()
                    }
                )) {
                    VStack(alignment: .leading) {
                        Text(list.name)
                        Text("\(list.accepted) rules, \(list.errorCount) errors").font(.caption)
                    }
                }
            }
            .navigationTitle("Lists")
            .onAppear { reload() }
        }
    }

    private func reload() {
        lists = (try? state.embargo.lists()) ?? []
    }
}

struct SettingsView: View {
    @ObservedObject var state: AppState
    @State private var settings = Settings()

    var body: some View {
        NavigationStack {
            Form {
                TextField("DNS resolver", text: $settings.dnsUpstream, prompt: Text("9.9.9.9, tls://NAME@IP, https://NAME@IP/dns-query"))
                    .autocorrectionDisabled()
                Text(Settings.isEncryptedDns(settings.dnsUpstream) ? "Encrypted (the name is checked against the server's certificate)" : "Plain DNS")
                    .font(.caption)
                Toggle("Record allowed connections", isOn: $settings.recordAllowed)
                Toggle("Refuse encrypted DNS to known resolvers", isOn: $settings.blockEncryptedDns)
                Toggle("Keep the tunnel on (on demand)", isOn: $settings.onDemand)
                Stepper("Keep history \(settings.historyRetentionDays) days", value: $settings.historyRetentionDays, in: 1...365)
                Button("Save") {
                    state.attempt {
                        try settings.validate()
                        try SettingsStore(file: state.group.settingsFile).save(settings)
                    }
                    Task { await state.sendReload() }
                }
            }
            .navigationTitle("Settings")
            .onAppear { settings = (try? SettingsStore(file: state.group.settingsFile).load()) ?? Settings() }
        }
    }
}

struct HistoryView: View {
    let model: HistoryModel
    @State private var search = ""
    @State private var rows: [HistoryRowText] = []
    /// The CSV of the current filter, written when the filter changes (not on every render).
    @State private var exported: URL?
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
            .toolbar {
                if let file = exported {
                    ShareLink(item: file) { Label("Export", systemImage: "square.and.arrow.up") }
                }
            }
            .searchable(text: $search)
            .onChange(of: search) { _ in apply() }
            .onAppear { apply() }
            .navigationTitle("History")
        }
    }

    /// The rows under the filter as a CSV file for the share sheet.
    private func exportFile() -> URL? {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("embargo-history.csv")
        return (try? model.exportCSV(to: file)) == nil ? nil : file
    }

    private func apply() {
        try? model.apply(HistoryFilter(search: search))
        exported = exportFile()
        reload(keepFilter: true)
    }

    private func reload(keepFilter: Bool) {
        rows = model.rows.map(formatter.text)
    }
}
#endif
