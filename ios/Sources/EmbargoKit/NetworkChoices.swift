import EmbargoFFI
import Foundation

/// The Companies and Countries screens' choices: block or allow a company (network owner) or a
/// country for every app. iOS does not tell which app made a connection, so there is no per-app
/// choice to offer. The choices are saved in the App Group container and become one list in
/// Embargo's own format, so the core's rules (and their explanations) do the deciding.
public final class NetworkChoices {
    /// The list the choices become.
    public static let listName = "ios-choices"

    public enum Choice: String, Codable, Equatable, Sendable {
        case block
        case allow
    }

    struct Saved: Codable, Equatable {
        var owners: [String: Choice] = [:]
        var countries: [String: Choice] = [:]
    }

    let embargo: Embargo
    let file: URL
    private var saved = Saved()

    /// Reads the saved choices from `file` (none when it does not exist yet).
    public init(embargo: Embargo, file: URL) throws {
        self.embargo = embargo
        self.file = file
        if FileManager.default.fileExists(atPath: file.path) {
            do {
                saved = try JSONDecoder().decode(Saved.self, from: Data(contentsOf: file))
            } catch {
                throw SettingsError(file: file.path, problem: "not valid choices JSON")
            }
        }
    }

    public func owner(_ name: String) -> Choice? { saved.owners[name] }
    public func country(_ code: String) -> Choice? { saved.countries[code.uppercased()] }

    /// Sets (or with nil clears) the choice for a company, and applies it.
    public func set(owner name: String, _ choice: Choice?) throws {
        saved.owners[name] = choice
        try apply()
    }

    /// Sets (or with nil clears) the choice for a country (ISO 3166-1 alpha-2), and applies it.
    public func set(country code: String, _ choice: Choice?) throws {
        let upper = code.uppercased()
        guard upper.count == 2, upper.allSatisfy({ $0.isASCII && $0.isLetter }) else {
            throw EmbargoError.InvalidInput(message: "not a two-letter country code: \(code)")
        }
        saved.countries[upper] = choice
        try apply()
    }

    /// The list text: one rule per choice, in a stable order.
    public func listText() -> String {
        var lines = ["# Written by the Embargo app (Companies and Countries)."]
        for (name, choice) in saved.owners.sorted(by: { $0.key < $1.key }) {
            lines.append((choice == .allow ? "allow " : "") + "owner: \(name)")
        }
        for (code, choice) in saved.countries.sorted(by: { $0.key < $1.key }) {
            lines.append((choice == .allow ? "allow " : "") + "country: \(code)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private func apply() throws {
        let report = try embargo.setList(name: Self.listName, bytes: Data(listText().utf8), format: .embargo)
        if let first = report.errors.first {
            throw EmbargoError.InvalidInput(message: "\(Self.listName) line \(first.line): \(first.message)")
        }
        try embargo.rulesChanged()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(saved).write(to: file, options: .atomic)
    }
}
