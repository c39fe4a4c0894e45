// swift-tools-version:5.9
// The Ikelink Apple shell: a NEPacketTunnelProvider around the UniFFI bindings of `ikelink-ffi`.
//
// Before the first build, run `./build-xcframework.sh` (on a Mac with Xcode and rustup): it builds the Rust
// static libraries into `ikelink_ffiFFI.xcframework` (the C module `ikelink_ffiFFI`) and copies the generated
// Swift bindings to `Sources/IkelinkFFI/ikelink_ffi.swift`. Both are build products, not committed.
import PackageDescription

let package = Package(
    name: "IkelinkTunnel",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "IkelinkTunnel", targets: ["IkelinkTunnel"]),
        // For the app: what it needs from a profile (read by Ikelink's parser) and the shared Keychain secrets.
        .library(name: "IkelinkShared", targets: ["IkelinkShared"]),
    ],
    targets: [
        // Placeholder path: produced by build-xcframework.sh.
        .binaryTarget(name: "ikelink_ffiFFI", path: "ikelink_ffiFFI.xcframework"),
        // The generated bindings (module IkelinkFFI): VpnClient, VpnEvent, VpnError, TunProvider...
        .target(name: "IkelinkFFI", dependencies: ["ikelink_ffiFFI"], path: "Sources/IkelinkFFI", exclude: ["README.md"]),
        // Shared by the app and the extension: profile facts (kill switch, gateway) and secrets.
        .target(
            name: "IkelinkShared",
            dependencies: ["IkelinkFFI"],
            path: "Sources/IkelinkShared",
            linkerSettings: [.linkedFramework("Security")]
        ),
        .target(
            name: "IkelinkTunnel",
            dependencies: ["IkelinkFFI", "IkelinkShared"],
            path: "Sources/IkelinkTunnel",
            linkerSettings: [
                .linkedFramework("NetworkExtension"),
                .linkedFramework("Network"),
                .linkedFramework("Security"),
            ]
        ),
    ]
)
