// The app's entry point (Xcode's app target only; not part of the Swift package).
#if canImport(SwiftUI) && canImport(NetworkExtension)
import EmbargoUI
import SwiftUI

@main
struct EmbargoApp: App {
    // Opening fails only without the App Group entitlement or with a damaged settings file:
    // say which, rather than crash.
    private let state: Result<AppState, Error> = Result { try AppState() }

    var body: some Scene {
        WindowGroup {
            switch state {
            case .success(let state): RootView(state: state)
            case .failure(let error): Text("Embargo cannot start: \(String(describing: error))").padding()
            }
        }
    }
}
#endif
