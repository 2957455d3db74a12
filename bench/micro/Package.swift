// swift-tools-version:6.1
//
// tokenfeed micro-benchmarks (ordo-one/benchmark). A separate package so that building and
// testing the main package never builds the benchmark framework.
//
//   swift package --package-path bench/micro --scratch-path .build-bench benchmark
//
// The code under test is the main package's own source, not a copy: `Sources/RingUnderTest`
// is a symbolic link to `../../Sources/Daemon/Engine/Ring`. (A path dependency on the main
// package cannot be used: SwiftPM imports only a package's products, and the main package
// exports no library product for its `TokenfeedEngine` module. Once it does, replace the link
// with `.package(path: "../..")` and `.product(name: "TokenfeedEngine", package: "main")`.)
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "tokenfeed-micro-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1",
                 traits: ["MallocInterposer"]),
    ],
    targets: [
        // The main package's ring (module TokenfeedEngine there), compiled here as its own module.
        .target(name: "RingUnderTest", path: "Sources/RingUnderTest", swiftSettings: strict),
        .executableTarget(
            name: "RingBenchmarks",
            dependencies: ["RingUnderTest", .product(name: "Benchmark", package: "benchmark")],
            path: "Benchmarks/RingBenchmarks",
            swiftSettings: strict,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
