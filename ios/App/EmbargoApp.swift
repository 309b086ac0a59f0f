// The app's entry point (Xcode's app target only; not part of the Swift package).
#if canImport(SwiftUI) && canImport(NetworkExtension)
import EmbargoUI
import SwiftUI

@main
struct EmbargoApp: App {
    @StateObject private var state = try! AppState()

    var body: some Scene {
        WindowGroup { RootView(state: state) }
    }
}
#endif
