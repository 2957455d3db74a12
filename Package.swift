// swift-tools-version:6.2
//
// tokenfeed — a data-loader daemon for LLM pretraining.
//
// The targets follow the data flow (see README.md, "Architecture"):
//
//   shards (Daemon/Shards) ─┐
//   curriculum (Daemon/Curriculum) → mixing (Daemon/Mixing) ─┴→ engine (Daemon/Engine)
//     → serving (Daemon/Serving) ⇄ wire protocol (Protocol) ⇄ client (Client)
//
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "tokenfeed",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tokenfeed", targets: ["tokenfeed"]),
        .executable(name: "tokenfeedd", targets: ["tokenfeedd"]),
        .library(name: "TokenfeedClient", targets: ["TokenfeedClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Tests only: counts allocations (Tests/AllocationProbe).
        .package(url: "https://github.com/ordo-one/malloc-interposer.git", from: "1.6.1"),
    ],
    targets: [
        // C libraries, linked from the system through pkg-config.
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CYAML", path: "Sources/CYAML", pkgConfig: "yaml-0.1",
                       providers: [.apt(["libyaml-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),

        // The wire format shared by the daemon and the clients. No I/O (zlib only for CRC-32).
        .target(name: "TokenfeedProtocol", dependencies: ["CZlib"], path: "Sources/Protocol", swiftSettings: strict),

        // The daemon's engine, one module per stage of the data flow.
        .target(name: "TokenfeedShards",
                dependencies: ["CZstd", "CZlib", .product(name: "SystemPackage", package: "swift-system")],
                path: "Sources/Daemon/Shards", swiftSettings: strict),
        .target(name: "TokenfeedCurriculum", dependencies: ["CYAML", "TokenfeedProtocol"],
                path: "Sources/Daemon/Curriculum", swiftSettings: strict),
        .target(name: "TokenfeedMixing", dependencies: ["TokenfeedCurriculum"],
                path: "Sources/Daemon/Mixing", swiftSettings: strict),
        .target(name: "TokenfeedEngine",
                dependencies: ["TokenfeedShards", "TokenfeedCurriculum", "TokenfeedMixing"],
                path: "Sources/Daemon/Engine", swiftSettings: strict),
        .target(name: "TokenfeedServer",
                dependencies: ["TokenfeedShards", "TokenfeedEngine", "TokenfeedCurriculum", "TokenfeedMixing", "TokenfeedProtocol",
                               .product(name: "Logging", package: "swift-log"),
                               .product(name: "CoreMetrics", package: "swift-metrics"),
                               .product(name: "Prometheus", package: "swift-prometheus"),
                               .product(name: "SystemPackage", package: "swift-system")],
                path: "Sources/Daemon/Serving", swiftSettings: strict),

        // The Swift client library trainers link.
        .target(name: "TokenfeedClient",
                dependencies: ["TokenfeedProtocol", .product(name: "SystemPackage", package: "swift-system")],
                path: "Sources/Client", swiftSettings: strict),

        // What both executables share on the command line: the exit status convention.
        .target(name: "CommandLineSupport",
                dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser"),
                               .product(name: "SystemPackage", package: "swift-system")],
                path: "Sources/CommandLineSupport", swiftSettings: strict),

        // Executables: thin mains over the modules above.
        .executableTarget(name: "tokenfeedd",
                          dependencies: ["TokenfeedServer", "TokenfeedProtocol", "TokenfeedShards", "TokenfeedCurriculum", "CommandLineSupport",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                         .product(name: "Logging", package: "swift-log")],
                          path: "Sources/tokenfeedd", swiftSettings: strict),
        .executableTarget(name: "tokenfeed",
                          dependencies: ["TokenfeedShards", "TokenfeedCurriculum", "TokenfeedMixing",
                                         "TokenfeedEngine", "TokenfeedServer", "TokenfeedClient", "TokenfeedProtocol", "CommandLineSupport",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                         .product(name: "SystemPackage", package: "swift-system")],
                          path: "Sources/tokenfeed", swiftSettings: strict),

        // Tests: unit, property and integration (real daemon, real socket, real files).
        .target(name: "TestSupport", dependencies: ["TokenfeedShards", "TokenfeedMixing"], path: "Tests/Support",
                swiftSettings: strict),
        // A test tool: the daemon's allocations per batch, counted under the malloc interposer
        // (ServerTests' AllocationTests runs it; docs/DEVELOPING.md, "Rules").
        .executableTarget(name: "AllocationProbe",
                          dependencies: ["TokenfeedServer", "TokenfeedProtocol", "TokenfeedShards", "TestSupport",
                                         .product(name: "Logging", package: "swift-log"),
                                         .product(name: "MallocInterposerSwift", package: "malloc-interposer")],
                          path: "Tests/AllocationProbe", swiftSettings: strict),
        .testTarget(name: "ShardsTests", dependencies: ["TokenfeedShards", "TokenfeedMixing", "TestSupport"],
                    path: "Tests/ShardsTests", swiftSettings: strict),
        .testTarget(name: "ExportTests", dependencies: ["TokenfeedShards", "TestSupport"],
                    path: "Tests/ExportTests", swiftSettings: strict),
        .testTarget(name: "CurriculumTests", dependencies: ["TokenfeedCurriculum", "TokenfeedMixing", "TestSupport"],
                    path: "Tests/CurriculumTests", swiftSettings: strict),
        .testTarget(name: "EngineTests", dependencies: ["TokenfeedEngine", "TokenfeedCurriculum", "TokenfeedMixing",
                                                     "TokenfeedShards", "TestSupport"],
                    path: "Tests/EngineTests", swiftSettings: strict),
        .testTarget(name: "ServerTests",
                    dependencies: ["TokenfeedServer", "TokenfeedClient", "TokenfeedEngine", "TokenfeedCurriculum",
                                   "TokenfeedProtocol", "TokenfeedShards", "TestSupport", "tokenfeedd", "tokenfeed", "CommandLineSupport",
                                   .product(name: "Logging", package: "swift-log")],
                    path: "Tests/ServerTests", swiftSettings: strict),
        // A client-only consumer: depends on the TokenfeedClient product's target alone (and imports it alone).
        .testTarget(name: "ClientTests", dependencies: ["TokenfeedClient"], path: "Tests/ClientTests", swiftSettings: strict),
        .testTarget(name: "ProtocolTests", dependencies: ["TokenfeedProtocol", "TokenfeedMixing"],
                    path: "Tests/ProtocolTests", swiftSettings: strict),
    ]
)
