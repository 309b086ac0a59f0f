// swift-tools-version:5.9
// Embargo for iOS as a Swift package: EmbargoKit (everything that is not UI or NetworkExtension,
// built and tested on Linux too), EmbargoUI (SwiftUI screens) and EmbargoTunnel (the packet
// tunnel provider), both Apple-only behind `#if canImport`, so on Linux they are parsed and
// compile to nothing. The Xcode project (project.yml) builds the app and the extension from
// these products.
import PackageDescription

#if os(Linux)
// Linux: the host library built by bindings/generate.sh, through this package's own module map
// (the generated one says `use "Darwin"`); ios/test.sh copies the generated header beside it.
let ffi: Target = .systemLibrary(name: "EmbargoFFIFFI", path: "Sources/EmbargoFFIFFI")
#else
// Apple: the static libraries for device and simulator made by ios/build-xcframework.sh.
let ffi: Target = .binaryTarget(name: "EmbargoFFIFFI", path: "build/EmbargoFFI.xcframework")
#endif

let package = Package(
    name: "EmbargoKit",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [
        .library(name: "EmbargoKit", targets: ["EmbargoKit"]),
        .library(name: "EmbargoUI", targets: ["EmbargoUI"]),
        .library(name: "EmbargoTunnel", targets: ["EmbargoTunnel"]),
    ],
    targets: [
        ffi,
        // The UniFFI-generated Swift (bindings/generated/swift/EmbargoFFI.swift, copied here by
        // ios/test.sh and ios/build-xcframework.sh; not committed).
        .target(name: "EmbargoFFI", dependencies: ["EmbargoFFIFFI"], path: "Sources/EmbargoFFI"),
        .target(name: "EmbargoKit", dependencies: ["EmbargoFFI"]),
        .target(name: "EmbargoUI", dependencies: ["EmbargoKit"]),
        .target(name: "EmbargoTunnel", dependencies: ["EmbargoKit"]),
        .testTarget(name: "EmbargoKitTests", dependencies: ["EmbargoKit"]),
    ]
)
