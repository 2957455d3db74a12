import Foundation
import Testing
import TestSupport

/// The hot path allocates nothing per batch (docs/DEVELOPING.md, "Rules"): the AllocationProbe tool
/// serves a corpus of many datasets from the real server on a real socket, with ordo-one's malloc
/// interposer preloaded, and counts every allocation of the process over 2,000 batches in steady
/// state — with every frame cached (packer → ring → socket), with frames decompressed all the time
/// (preloader and frame loading), and with a client that returns credit batch by batch (the writer
/// waits for credit after each batch). Counts, not times: the machine's load changes nothing.
@Suite struct AllocationTests {
    /// The probe to run: `TOKENFEED_ALLOCATION_PROBE` (scripts/test.sh sets it), else the release build
    /// beside this debug build's products. A release build, because the rule is the optimised daemon's:
    /// a debug build's unspecialised generics (`first(where:)`, `for … in` over an array) allocate.
    static let configuredProbe = ProcessInfo.processInfo.environment["TOKENFEED_ALLOCATION_PROBE"]
    static let probe = configuredProbe
        ?? URL(fileURLWithPath: productsFolder).deletingLastPathComponent().appendingPathComponent("release/AllocationProbe").path
    /// The interposer library, built beside the probe.
    #if os(macOS)
    static let interposer = URL(fileURLWithPath: probe).deletingLastPathComponent().appendingPathComponent("libMallocInterposerSwift.dylib").path
    static let preloadVariable = "DYLD_INSERT_LIBRARIES"
    #else
    static let interposer = URL(fileURLWithPath: probe).deletingLastPathComponent().appendingPathComponent("libMallocInterposerSwift.so").path
    static let preloadVariable = "LD_PRELOAD"
    #endif

    /// Runs the probe with the interposer preloaded; returns its exit status and standard output.
    static func runProbe(_ arguments: [String]) throws -> (status: Int32, output: Data, errors: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: probe)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment[preloadVariable] = interposer
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output, errors)
    }

    /// Whether the interposer counts here: it is compiled out under ThreadSanitizer and AddressSanitizer
    /// (its header probe reads before each block), and needs the library's preloading.
    static let interposerCounts: Bool = {
        guard !isThreadSanitized,
              FileManager.default.isExecutableFile(atPath: probe), FileManager.default.fileExists(atPath: interposer),
              let result = try? runProbe(["--self-check"]), result.status == 0,
              let object = try? JSONSerialization.jsonObject(with: result.output) as? [String: Any] else { return false }
        return object["interposer"] as? Bool == true
    }()

    /// Where scripts/test.sh names the probe (as CI runs it), the probe is there and counts: a probe
    /// missing or an interposer inactive there would otherwise turn the allocation test off silently.
    @Test(.enabled(if: configuredProbe != nil && !isThreadSanitized)) func theConfiguredProbeCounts() {
        #expect(FileManager.default.isExecutableFile(atPath: Self.probe), "\(Self.probe): swift build -c release --product AllocationProbe")
        #expect(FileManager.default.fileExists(atPath: Self.interposer), "\(Self.interposer) is built with the probe")
        #expect(Self.interposerCounts, "the malloc interposer counts nothing under \(Self.preloadVariable)=\(Self.interposer)")
    }

    @Test(.enabled("needs a release AllocationProbe (swift build -c release --product AllocationProbe) and the malloc interposer counting (no sanitizer)") {
        Self.interposerCounts
    })
    func fewerThanOneAllocationPerBatchInSteadyState() throws {
        let result = try Self.runProbe(["--batches", "2000", "--warmup", "1000", "--datasets", "12"])
        try #require(result.status == 0, "AllocationProbe failed: \(result.errors)")
        let object = try #require(try JSONSerialization.jsonObject(with: result.output) as? [String: Any])
        let scenarios = try #require(object["scenarios"] as? [[String: Any]])
        let byName = Dictionary(uniqueKeysWithValues: scenarios.map { ($0["name"] as? String ?? "", $0) })
        let report = String(decoding: result.output, as: UTF8.self)
        for name in ["cached", "streamed", "lockstep"] {
            let scenario = try #require(byName[name], "no \(name) scenario in \(report)")
            let batches = try #require(scenario["batches"] as? Int)
            let mallocs = try #require(scenario["mallocs"] as? Int)
            #expect(batches == 2000)
            #expect(mallocs < batches, "\(name): \(mallocs) allocations over \(batches) batches: \(report)")
        }
        // The scenarios are what they say: no decompression with every frame cached, about two frames
        // a batch with a budget of 32 frames.
        for name in ["cached", "lockstep"] {
            #expect(byName[name]?["framesDecompressed"] as? Int == 0, "\(report)")
        }
        #expect((byName["streamed"]?["framesDecompressed"] as? Int ?? 0) >= 2000, "\(report)")
    }
}
