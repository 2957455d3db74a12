import Foundation
import Testing
import TestSupport
import TokenfeedCurriculum

/// The cluster files under deploy/ (docs/CLUSTER.md): the Slurm scripts parse and run as a Slurm
/// job step would run them, against the real daemon; the Kubernetes manifest wires the sidecar,
/// probes and shared socket volume as documented.
@Suite struct ClusterFilesTests {
    static let deploy = Fixtures.repositoryRoot + "/deploy"

    @Test(arguments: ["slurm/train.sbatch", "slurm/tokenfeedd-node.sh", "slurm/wait-ready.sh", "slurm/epilog.sh"])
    func slurmScriptsParse(script: String) throws {
        let result = try run("/bin/bash", ["-n", Self.deploy + "/" + script])
        #expect(result.status == 0, "\(script): \(result.stderr)")
    }

    /// tokenfeedd-node.sh and wait-ready.sh as train.sbatch runs them: the daemon becomes ready on
    /// $TOKENFEED_SOCKET in the job's private run folder, serves a client, stops on SIGTERM with exit
    /// 0 and leaves no run folder behind.
    @Test func nodeScriptRunsTheDaemonForTheJobAndCleansUp() throws {
        let fixture = try ServerFixture()
        let run = fixture.dir.sub("run-4242")
        let socket = run + "/tokenfeed.sock"
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = productsFolder + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        environment["CURRICULUM"] = fixture.curriculumPath
        environment["DATA_ROOT"] = fixture.dataRoot
        environment["TOKENFEED_RUN_DIR"] = run
        environment["TOKENFEED_SOCKET"] = socket
        environment["TOKENFEED_STATE_DIR"] = fixture.dir.sub("state")
        environment["SLURM_JOB_ID"] = "4242"

        // Started with no signal blocked, as slurmstepd starts a step's task (a test thread's blocked
        // signals would otherwise be inherited, and bash cannot unblock SIGTERM).
        let node = Process()
        node.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        node.arguments = ["python3", "-c",
                          "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv(sys.argv[1], sys.argv[1:])",
                          Self.deploy + "/slurm/tokenfeedd-node.sh"]
        node.environment = environment
        node.standardOutput = FileHandle.nullDevice
        let log = Pipe()
        node.standardError = log
        try node.run()
        defer { if node.isRunning { kill(node.processIdentifier, SIGKILL) } }

        let wait = Process()
        wait.executableURL = URL(fileURLWithPath: Self.deploy + "/slurm/wait-ready.sh")
        wait.arguments = ["120"]
        wait.environment = environment
        try wait.run()
        wait.waitUntilExit()
        #expect(wait.terminationStatus == 0, "the daemon became ready")

        var attributes = stat()
        #expect(stat(run, &attributes) == 0 && attributes.st_mode & 0o777 == 0o700, "the run folder is private")
        let dump = try TestSupport.run(productsFolder + "/tokenfeed", ["dump", "--socket", socket, "--count", "1", "--json"])
        #expect(dump.status == 0, "a client is served through TOKENFEED_SOCKET: \(dump.stderr)")

        kill(node.processIdentifier, SIGTERM)
        node.waitUntilExit()
        let stderr = String(decoding: log.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(node.terminationStatus == 0, "SIGTERM stops the daemon cleanly: \(stderr)")
        #expect(!FileManager.default.fileExists(atPath: run), "the run folder is removed")
    }

    @Test func kubernetesPodRunsTheDaemonAsANativeSidecarOnASharedSocketVolume() throws {
        let text = try String(contentsOfFile: Self.deploy + "/kubernetes/trainer-pod.yaml", encoding: .utf8)
        let documents = text.components(separatedBy: "\n---\n")
        #expect(documents.count == 2)
        let pod = try #require(try YAMLParser.parse(documents[0], file: "trainer-pod.yaml"))
        func value(_ node: YAMLNode?, _ key: String) -> YAMLNode? {
            guard case .mapping(let entries, _)? = node else { return nil }
            return entries.first { $0.key == key }?.value
        }
        func items(_ node: YAMLNode?) -> [YAMLNode] {
            guard case .sequence(let nodes, _)? = node else { return [] }
            return nodes
        }
        #expect(value(pod, "kind")?.scalarText == "Pod")
        let spec = value(pod, "spec")
        let sidecar = try #require(items(value(spec, "initContainers")).first)
        #expect(value(sidecar, "restartPolicy")?.scalarText == "Always", "a native sidecar")
        let probe = items(value(value(value(sidecar, "startupProbe"), "exec"), "command")).compactMap(\.scalarText)
        #expect(probe == ["tokenfeed", "stats", "--socket", "/run/tokenfeed/tokenfeed.sock"])
        let trainer = try #require(items(value(spec, "containers")).first)
        let socketEnv = items(value(trainer, "env")).first { value($0, "name")?.scalarText == "TOKENFEED_SOCKET" }
        #expect(value(socketEnv, "value")?.scalarText == "/run/tokenfeed/tokenfeed.sock")
        for container in [sidecar, trainer] {
            let mounts = items(value(container, "volumeMounts"))
            #expect(mounts.contains { value($0, "name")?.scalarText == "tokenfeed-run" && value($0, "mountPath")?.scalarText == "/run/tokenfeed" })
        }
        let volume = items(value(spec, "volumes")).first { value($0, "name")?.scalarText == "tokenfeed-run" }
        #expect(value(value(volume, "emptyDir"), "medium")?.scalarText == "Memory")

        let config = try #require(try YAMLParser.parse(documents[1], file: "trainer-pod.yaml"))
        let daemonConfig = try #require(value(value(config, "data"), "tokenfeedd.yaml")?.scalarText)
        let parsed = try #require(try YAMLParser.parse(daemonConfig, file: "tokenfeedd.yaml"))
        #expect(value(parsed, "socket")?.scalarText == "/run/tokenfeed/tokenfeed.sock")
        #expect(value(parsed, "data_root")?.scalarText == "/data")
    }
}
