import Foundation
import Testing
import TestSupport
import TokenfeedClient
import TokenfeedProtocol
@testable import TokenfeedServer

/// The metrics endpoint and the per-job state of an in-process daemon on a real socket (the scrape
/// by Prometheus' own text parser, against a streaming client, is in clients/python/tests/test_metrics.py).
@Suite struct MetricsTests {
    @Test func metricsAddressesAndTheirConfigKeys() throws {
        #expect(try MetricsAddress(parsing: "127.0.0.1:9464").isLoopback)
        #expect(try MetricsAddress(parsing: "localhost:9464").description == "127.0.0.1:9464")
        #expect(try MetricsAddress(parsing: "[::1]:9464").isLoopback)
        #expect(try !MetricsAddress(parsing: "0.0.0.0:9464").isLoopback)
        #expect(try !MetricsAddress(parsing: "[::]:1").isLoopback)
        for bad in ["9464", "127.0.0.1", "127.0.0.1:x", "127.0.0.1:70000", "example.com:80", "::1:80"] {
            #expect(throws: MetricsAddressError.self, "\(bad)") { try MetricsAddress(parsing: bad) }
        }
        let config = try ConfigFile.parse(text: "metrics_listen: \"[::1]:9100\"\nmetrics_listen_any: true\n", path: "t.yaml")
        #expect(config.metricsListen?.port == 9100 && config.metricsListenAny == true)
        do {
            _ = try ConfigFile.parse(text: "socket: s\nmetrics_listen: nowhere\nmetrics_listen_any: maybe\n", path: "t.yaml")
            Issue.record("bad metrics settings were accepted")
        } catch {
            #expect(error.description.contains("t.yaml:2:17") && error.description.contains("ADDR:PORT"), "\(error.description)")
            #expect(error.description.contains("t.yaml:3:21") && error.description.contains("true or false"), "\(error.description)")
        }
    }

    @Test func theEndpointServesWhatStatsPrometheusReturnsAndJobsHaveTheirOwnState() throws {
        let fixture = try ServerFixture()
        var options = fixture.options()
        options.metricsListen = try MetricsAddress(parsing: "127.0.0.1:0")
        options.stateDirectory = fixture.dir.sub("state")
        let server = try fixture.startServer(options)
        defer { server.shutdown() }
        let port = try #require(server.metricsPort)
        var counted: [String: Int] = [:]
        for (job, batches) in [("a", 3), ("b/../c", 5)] {
            let client = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 2, credits: 1, jobID: job)
            counted[job] = try client.rows(batches: batches).count * fixture.sequenceLength
            client.close()
        }
        #expect(eventually(within: 10) { server.connectionCount == 0 })
        let scraped = try httpGet(port: port, path: "/metrics")
        #expect(scraped.hasPrefix("HTTP/1.1 200 OK\r\n") && scraped.contains("Content-Type: text/plain; version=0.0.4"))
        let body = String(scraped[scraped.range(of: "\r\n\r\n")!.upperBound...])
        let stats = try TokenfeedClient.stats(socketPath: fixture.socketPath, prometheus: true)
        let overSocket = try #require(stats.prometheusText)
        // Only the uptime and the stats connection itself differ between the two reads.
        func stable(_ text: String) -> [Substring] {
            text.split(separator: "\n").filter { !$0.hasPrefix("tokenfeed_uptime_seconds") && !$0.hasPrefix("tokenfeed_connections") }
        }
        #expect(stable(body) == stable(overSocket))
        for (job, tokens) in counted {
            // Credit 1: at most one batch (2 rows) beyond what the client read was sent.
            let line = try #require(body.split(separator: "\n").first { $0.hasPrefix("tokenfeed_served_tokens_total{job=\"\(job)\",rank=\"0\"}") })
            let served = try #require(Int(line.split(separator: " ").last!))
            #expect(served >= tokens && served <= tokens + 2 * fixture.sequenceLength, "\(line)")
            let cursor = try Cursor(text: String(contentsOfFile: JobStateFiles.cursorPath(stateDirectory: options.stateDirectory!, jobID: job, rank: 0), encoding: .utf8))
            #expect(cursor.nextStep * 2 * UInt64(fixture.sequenceLength) == UInt64(served))
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: JobStateFiles.statsPath(stateDirectory: options.stateDirectory!, jobID: job)))) as? [String: Any]
            #expect(json?["position_sequence"] as? Int == Int(cursor.nextStep) * 2)
            #expect(json?["tokens_served"] as? Int == served, "the job's own count, not the daemon's")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: options.stateDirectory! + "/jobs").sorted() == ["a", "b%2F..%2Fc"])
        #expect(body.contains("tokenfeed_sessions_opened_total 2\n"))
        #expect(try httpGet(port: port, path: "/").hasPrefix("HTTP/1.1 404 "))
        #expect(try httpGet(port: port, path: "/metrics", method: "DELETE").hasPrefix("HTTP/1.1 405 "))
    }

    /// Waits recorded with atomics reach the histogram with exact bucket counts and sum, across drains.
    @Test func waitHistogramsKeepExactBucketsAndSums() throws {
        let metrics = DaemonMetrics()
        func sample(_ text: String, _ name: String) -> String? {
            text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.map { String($0.split(separator: " ").last!) }
        }
        // 100 µs is the first bound: 100,000 ns falls in it, 100,001 in the next; 31 s is above every bound.
        let waits: [UInt64] = [1, 99_999, 100_000, 100_001, 700_000, 3_000_000, 3_000_001, 31_000_000_000]
        for wait in waits { metrics.clientWait.record(nanoseconds: wait) }
        var text = metrics.waitsText()
        #expect(sample(text, "tokenfeed_client_wait_seconds_count") == "8")
        #expect(sample(text, "tokenfeed_client_wait_seconds_bucket{le=\"0.0001\"}") == "3")
        #expect(sample(text, "tokenfeed_client_wait_seconds_bucket{le=\"0.0005\"}") == "4")
        #expect(sample(text, "tokenfeed_client_wait_seconds_bucket{le=\"0.001\"}") == "5")
        #expect(sample(text, "tokenfeed_client_wait_seconds_bucket{le=\"0.005\"}") == "7")
        #expect(sample(text, "tokenfeed_client_wait_seconds_bucket{le=\"30.0\"}") == "7")
        #expect(sample(text, "tokenfeed_client_wait_seconds_sum") == "31.007000002", "the exact sum of the waits")
        #expect(sample(text, "tokenfeed_daemon_wait_seconds_count") == "0")
        // A second drain adds only what came since.
        metrics.clientWait.record(nanoseconds: 2_000_000_000)
        metrics.daemonWait.record(nanoseconds: 5)
        text = metrics.waitsText()
        #expect(sample(text, "tokenfeed_client_wait_seconds_count") == "9")
        #expect(sample(text, "tokenfeed_client_wait_seconds_bucket{le=\"5.0\"}") == "8")
        #expect(sample(text, "tokenfeed_client_wait_seconds_sum") == "33.007000002")
        #expect(sample(text, "tokenfeed_daemon_wait_seconds_count") == "1")
        #expect(metrics.waitsText() == text, "nothing new, nothing added")
    }

    /// `tokenfeed stats`: this daemon's counts and the stream position in two named columns; the current
    /// stage's datasets only (warmup has web and code, not tiny) unless `--all-stages`.
    @Test func statsTextNamesBothCountsAndListsTheCurrentStagesDatasets() throws {
        let fixture = try ServerFixture()
        let server = try fixture.startServer()
        defer { server.shutdown() }
        let client = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 2, credits: 1)
        _ = try client.rows(batches: 2)
        defer { client.close() }
        let tool = productsFolder + "/tokenfeed"
        let current = try run(tool, ["stats", "--socket", fixture.socketPath])
        #expect(current.status == 0, "\(current.stderr)")
        let text = String(decoding: current.stdout, as: UTF8.self)
        let lines = text.split(separator: "\n")
        let header = try #require(lines.first { $0.contains("served by this daemon") })
        #expect(header.contains("stream position"))
        #expect(lines.contains { $0.hasPrefix("tokens ") } && lines.contains { $0.hasPrefix("batches ") })
        #expect(text.contains("datasets in stage warmup (--all-stages for every stage's)"))
        #expect(lines.contains { $0.hasPrefix("  web ") } && lines.contains { $0.hasPrefix("  code ") })
        #expect(!lines.contains { $0.hasPrefix("  tiny ") }, "tiny has no weight in warmup")
        let all = String(decoding: try run(tool, ["stats", "--socket", fixture.socketPath, "--all-stages"]).stdout, as: UTF8.self)
        #expect(all.split(separator: "\n").contains { $0.hasPrefix("  tiny ") })
        let both = try run(tool, ["stats", "--socket", fixture.socketPath, "--json", "--prometheus"])
        #expect(both.status != 0 && both.stderr.contains("at most one of --json and --prometheus"))
    }

    /// An older daemon's `rank-R.cursor` files at the top of the state directory are named in a notice
    /// at start and left untouched; the new cursor goes to the job's folder.
    @Test func legacyCursorFilesAreNamedAndLeftAlone() throws {
        let fixture = try ServerFixture()
        let state = fixture.dir.sub("state")
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        let legacy = "tfc1-old\n"
        try legacy.write(toFile: state + "/rank-0.cursor", atomically: true, encoding: .utf8)
        let daemon = try DaemonProcess(["--curriculum", fixture.curriculumPath, "--data-root", fixture.dataRoot, "--socket", fixture.socketPath,
                                        "--preload-bytes", "1MiB", "--state-dir", state], socket: fixture.socketPath)
        let client = try TokenfeedClient.connect(socketPath: fixture.socketPath, rank: 0, worldSize: 1, batchSize: 2, credits: 1, jobID: "new")
        _ = try client.rows(batches: 2)
        client.close()
        #expect(eventually(within: 10) { FileManager.default.fileExists(atPath: state + "/jobs/new/rank-0.cursor") })
        #expect(daemon.terminate() == 0)
        #expect(daemon.stderr.contains("cursors are now kept per job") && daemon.stderr.contains("rank-0.cursor"), "\(daemon.stderr)")
        #expect(try String(contentsOfFile: state + "/rank-0.cursor", encoding: .utf8) == legacy)
    }

    /// One HTTP/1.1 request; the whole answer (the endpoint closes after it).
    private func httpGet(port: UInt16, path: String, method: String = "GET") throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
        let request = Array("\(method) \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            answer += chunk[0 ..< n]
        }
        return String(decoding: answer, as: UTF8.self)
    }
}
