// The client's API is written in the protocol's types — `Cursor`, `Hello`, `Welcome`, `BatchView`,
// `Stats`, `ErrorCode` — and in swift-system's `Errno` (`ClientError.errno`). They are re-exported so
// that a trainer needs one product and one import (`import TokenfeedClient`, as Tests/ClientTests
// checks) and names them directly. Listing TokenfeedProtocol in the product instead would still make
// every client file also `import TokenfeedProtocol`, a module that is not the client's API of its
// own; only `Errno` is taken from swift-system, not the whole of it.
@_exported import TokenfeedProtocol
@_exported import struct SystemPackage.Errno

/// A connection to a tokenfeed daemon serving one rank (docs/PROTOCOL.md).
///
/// ```swift
/// let client = try TokenfeedClient.connect(socketPath: "/run/tokenfeed.sock", rank: 0, worldSize: 8, batchSize: 4)
/// while let batch = try client.next() {
///     batch.withTokens32 { tokens in train(tokens) }   // in place, no copy
///     save(client.cursor)                               // resume here after a crash
/// }
/// ```
/// Flow control: the client grants `credits` batches up front and returns credit in groups of half
/// the window as batches are consumed, so up to `credits` batches are in flight and no batch needs a
/// round trip. Not thread-safe: use one client from one thread (or task) at a time.
public final class TokenfeedClient {
    /// The Hello this client sent.
    public let hello: Hello
    /// The daemon's answer: sequence length, token width, vocabulary, fingerprint, stages, datasets.
    public let welcome: Welcome
    /// The position after the last batch returned by `next()` (the Welcome's start cursor before the first).
    public private(set) var cursor: Cursor
    private let socket: ClientSocket
    private let decoder: FrameDecoder
    private let expectation: BatchExpectation
    private let creditGroup: UInt32
    private var consumedSinceCredit: UInt32 = 0
    private var ended = false
    private var closed = false

    private init(hello: Hello, welcome: Welcome, socket: ClientSocket, decoder: FrameDecoder) {
        self.hello = hello
        self.welcome = welcome
        self.cursor = welcome.startCursor
        self.socket = socket
        self.decoder = decoder
        self.expectation = BatchExpectation(hello: hello, welcome: welcome)
        self.creditGroup = max(1, hello.initialCredits / 2)
        decoder.limits.batch = UInt64(expectation.maximumFrameLength - FrameHeader.size)
    }

    deinit { close() }

    /// Connects, sends the Hello and waits for the Welcome.
    /// - Parameters:
    ///   - cursor: resume from this cursor (any rank's cursor of the job after the same step);
    ///     nil starts at the beginning of the stream.
    ///   - credits: batches kept in flight (at least 1).
    ///   - jobID: groups the clients of one job; all must declare the same world and batch size.
    ///   - replicas: processes that need this data-parallel rank's batches (tensor/pipeline-parallel
    ///     replicas); each connects with the same rank, shape, cursor and `replicas`, and its own
    ///     `replicaIndex` in `0 ..< replicas`, and receives every batch.
    /// - Throws: `ClientError` of kind `connectionFailed`; `daemonError` for the daemon's refusal
    ///   (`code` `.jobMismatch`, `.rankInUse`, `.cursorFingerprintMismatch`, `.badCursor`, …);
    ///   `invalidFrame`; `connectionClosed`.
    public static func connect(socketPath: String, rank: UInt32, worldSize: UInt32, batchSize: UInt32,
                               cursor: Cursor? = nil, credits: UInt32 = 4, jobID: String = "",
                               replicas: UInt16 = 1, replicaIndex: UInt16 = 0) throws(ClientError) -> TokenfeedClient {
        precondition(replicas >= 1 && replicaIndex < replicas, "replica \(replicaIndex) of \(replicas)")
        precondition(credits >= 1, "keep at least one batch in flight")
        precondition(worldSize >= 1 && batchSize >= 1 && rank < worldSize, "rank \(rank) of \(worldSize) × \(batchSize)")
        let socket = try ClientSocket.connect(path: socketPath)
        let hello = Hello(rank: rank, worldSize: worldSize, batchSize: batchSize, initialCredits: credits, cursor: cursor, jobID: jobID,
                          replicas: replicas, replicaIndex: replicaIndex)
        let decoder = FrameDecoder()
        do throws(ClientError) {
            let frame = try request(hello.encodeFrame(requestID: 1), socket, decoder)
            switch frame.header.type {
            case .welcome:
                guard case .welcome(let welcome) = try decode(frame) else { throw ClientError.invalidFrame(ProtocolError(.unexpectedMessage, "expected Welcome")) }
                return TokenfeedClient(hello: hello, welcome: welcome, socket: socket, decoder: decoder)
            case .error:
                guard case .error(let error) = try decode(frame) else { throw ClientError.invalidFrame(ProtocolError(.unexpectedMessage, "expected Error")) }
                throw ClientError(received: error)
            default:
                throw ClientError.invalidFrame(ProtocolError(.unexpectedMessage, "expected Welcome or Error after Hello, got \(frame.header.type)"))
            }
        } catch {
            socket.close()
            throw error
        }
    }

    /// Asks the daemon for its state over a connection of its own (a stats-only connection).
    /// - Parameter prometheus: also ask for the daemon's metrics in the Prometheus text format
    ///   (``Stats/prometheusText``; the text `GET /metrics` serves).
    /// - Throws: `ClientError` for connection failures, refusals and invalid frames.
    public static func stats(socketPath: String, prometheus: Bool = false) throws(ClientError) -> Stats {
        let socket = try ClientSocket.connect(path: socketPath)
        defer { socket.close() }
        let decoder = FrameDecoder()
        let frame = try request(StatsRequest(prometheus: prometheus).encodeFrame(requestID: 1), socket, decoder)
        switch try decode(frame) {
        case .stats(let stats):
            try? socket.write(Goodbye(reason: .done).encodeFrame())
            return stats
        case .error(let error): throw ClientError(received: error)
        default: throw .invalidFrame(ProtocolError(.unexpectedMessage, "expected Stats, got \(frame.header.type)"))
        }
    }

    /// The next batch, blocking until it arrives; nil once the daemon has sent the curriculum's last
    /// step (`Goodbye(end_of_stream)`). The batch is a view of the receive buffer, valid until the
    /// next call on this client.
    /// - Throws: `ClientError` of kind `daemonError` for the daemon's error (`code` `.dataError`
    ///   with the shard and frame in `detail`, `.shuttingDown`, …), `invalidFrame` when the daemon's
    ///   bytes break the protocol (the client closes), `connectionClosed`, `io`.
    public func next() throws(ClientError) -> ClientBatch? {
        guard !ended else { return nil }
        guard !closed else { throw .connectionClosed("the client was closed") }
        let frame: Frame
        do { frame = try Self.readFrame(socket, decoder) } catch {
            shutDown()
            throw error
        }
        switch frame.header.type {
        case .batch:
            let view: BatchView
            do { view = try frame.batchView(expecting: expectation) } catch {
                shutDown()
                throw .invalidFrame(error)
            }
            guard view.step == cursor.nextStep else {
                shutDown()
                throw .invalidFrame(ProtocolError(.malformedFrame, "Batch.step at offset 24: expected step \(cursor.nextStep), got \(view.step)"))
            }
            cursor = view.cursorAfter
            consumedSinceCredit += 1
            if consumedSinceCredit >= creditGroup {
                // A failed write means the daemon is closing the connection: the frames it sent
                // before (batches, then an Error or Goodbye) are still read by the next calls.
                try? socket.write(Credit(count: consumedSinceCredit).encodeFrame())
                consumedSinceCredit = 0
            }
            return ClientBatch(view: view, welcome: welcome)
        case .goodbye:
            ended = true
            shutDown()
            return nil
        case .error:
            shutDown()
            guard case .error(let error) = try Self.decode(frame) else { return nil }
            throw ClientError(received: error)
        default:
            shutDown()
            throw .invalidFrame(ProtocolError(.unexpectedMessage, "the daemon sent \(frame.header.type) during a session"))
        }
    }

    /// The batches as an `AsyncSequence` (each step blocks the task's thread on the socket while it waits).
    public var batches: Batches { Batches(client: self) }

    /// Ends the session with `Goodbye(done)` and closes the socket. Idempotent.
    public func close() {
        guard !closed else { return }
        if !ended { try? socket.write(Goodbye(reason: .done).encodeFrame()) }
        shutDown()
    }

    private func shutDown() {
        guard !closed else { return }
        closed = true
        socket.close()
    }

    /// Sends a connection's first frame and reads the answer. A daemon that refuses the connection
    /// (`auth_failed` for a user it does not allow) sends its Error and closes before reading: the
    /// write then fails, but the Error is still there to read, and is what is thrown.
    private static func request(_ bytes: [UInt8], _ socket: ClientSocket, _ decoder: FrameDecoder) throws(ClientError) -> Frame {
        do { try socket.write(bytes) } catch {
            if let frame = try? readFrame(socket, decoder) { return frame }
            throw error
        }
        return try readFrame(socket, decoder)
    }

    private static func readFrame(_ socket: ClientSocket, _ decoder: FrameDecoder) throws(ClientError) -> Frame {
        while true {
            do {
                if let frame = try decoder.nextFrame() { return frame }
            } catch { throw .invalidFrame(error) }
            if try socket.receive(into: decoder) == 0 {
                let partial = decoder.bufferedBytes
                throw .connectionClosed(partial > 0 ? "the daemon closed the connection in the middle of a frame" : "the daemon closed the connection")
            }
        }
    }

    private static func decode(_ frame: Frame) throws(ClientError) -> Message {
        do { return try frame.message() } catch { throw .invalidFrame(error) }
    }

    /// The batches of a client as an `AsyncSequence`; each element is valid until the next iteration.
    public struct Batches: AsyncSequence {
        public typealias Element = ClientBatch
        let client: TokenfeedClient

        public func makeAsyncIterator() -> Iterator { Iterator(client: client) }

        /// Iterates by calling the client's `next()`.
        public struct Iterator: AsyncIteratorProtocol {
            let client: TokenfeedClient
            public mutating func next() async throws -> ClientBatch? { try client.next() }
        }
    }
}
