import Testing
// The only import of the library: this target depends on the TokenfeedClient product's target alone,
// as a trainer's package does, and names every protocol type the client's API is written in. Without
// the re-exports in Sources/Client/TokenfeedClient.swift this file does not compile.
import TokenfeedClient

/// What a client-only consumer sees: the protocol types by name, and `ClientError` as a struct of
/// extensible kinds and codes that a new protocol error code cannot break.
@Suite struct ClientOnlyConsumerTests {
    /// The types in the client's public signatures are nameable with `import TokenfeedClient` alone.
    @Test func theProtocolTypesTheAPIExposesComeWithTheClient() throws {
        let cursor: Cursor = Cursor(fingerprint: 0x1234, nextStep: 7, worldSize: 2, batchSize: 4)
        #expect(try Cursor(text: cursor.text) == cursor)
        let hello: Hello = Hello(rank: 1, worldSize: 2, batchSize: 4, initialCredits: 4, cursor: cursor, jobID: "j",
                                 replicas: 1, replicaIndex: 0)
        #expect(hello.cursor == cursor)
        let _: (TokenfeedClient) -> Welcome = { $0.welcome }
        let _: (TokenfeedClient) -> Cursor = { $0.cursor }
        let _: (ClientBatch) -> BatchView = { $0.view }
        let _: (ClientBatch) -> TokenWidth = { $0.tokenWidth }
        let _: (ClientBatch, Int) -> BatchView.Row = { $0.row($1) }
        let _: (ClientBatch, Int) -> [Piece] = { $0.pieces(row: $1) }
        let _: (ClientBatch, Int) -> UInt32Column = { $0.cuSeqlens(row: $1) }
        let _: (String) throws(ClientError) -> Stats = { path throws(ClientError) in try TokenfeedClient.stats(socketPath: path) }
        let _: (ClientError) -> (ErrorCode?, Errno?, ProtocolError?) = { ($0.code, $0.errno, $0.protocolError) }
    }

    /// Every code the daemon can send is a `daemonError` carrying the code, message and detail; the
    /// text is `daemon error CODE: MESSAGE [DETAIL]`.
    @Test(arguments: ErrorCode.allKnown)
    func aReceivedErrorKeepsItsCodeMessageAndDetail(code: ErrorCode) {
        let error = ClientError(received: ErrorMessage(code: code, message: "the daemon says why", detail: "Hello.rank"))
        #expect(error.kind == .daemonError && error.code == code)
        #expect(error.message == "the daemon says why" && error.detail == "Hello.rank")
        #expect(error.socketPath == nil && error.errno == nil)
        #expect(error.description == "daemon error \(code.name): the daemon says why [Hello.rank]")
        #expect(ClientError(received: ErrorMessage(code: code, message: "m")).description == "daemon error \(code.name): m")
    }

    /// A code a newer daemon defines reaches the client with its number, and code that switches over
    /// the codes it knows (with the `default` a struct requires) still compiles and runs.
    @Test func aCodeThisClientDoesNotKnowKeepsItsNumber() {
        let error = ClientError(received: ErrorMessage(code: ErrorCode(rawValue: 99), message: "new", detail: "d"))
        #expect(error.kind == .daemonError && error.code?.rawValue == 99 && !(error.code?.isKnown ?? true))
        #expect(error.description == "daemon error code_99: new [d]")
        let action: String
        switch error.code {
        case .shuttingDown?, .replicaLost?: action = "reconnect"
        case .busy?: action = "retry"
        default: action = "fail"
        }
        #expect(action == "fail")
        #expect(ClientError(received: ErrorMessage(code: .busy, message: "")).code == .busy)
    }

    /// A socket that does not exist: `connectionFailed` with the path and the call's `Errno`, typed.
    @Test func connectingToNothingIsConnectionFailedWithItsErrno() {
        let path = "/nonexistent-tokenfeed-\(Int.random(in: 0 ..< 1 << 30))/tokenfeed.sock"
        let error = refusal { () throws(ClientError) in _ = try TokenfeedClient.connect(socketPath: path, rank: 0, worldSize: 1, batchSize: 1) }
        #expect(error?.kind == .connectionFailed)
        #expect(error?.errno == .noSuchFileOrDirectory, "\(String(describing: error))")
        #expect(error?.socketPath == path && error?.code == nil)
        #expect(error?.description == "cannot connect to \(path): No such file or directory")
        let stats = refusal { () throws(ClientError) in _ = try TokenfeedClient.stats(socketPath: path) }
        #expect(stats == error)
    }

    /// A path too long for `sockaddr_un` fails before any system call: no `Errno`, the reason says so.
    @Test func aSocketPathTooLongIsConnectionFailedWithoutErrno() {
        let path = "/tmp/" + String(repeating: "x", count: 200)
        let error = refusal { () throws(ClientError) in _ = try TokenfeedClient.connect(socketPath: path, rank: 0, worldSize: 1, batchSize: 1) }
        #expect(error?.kind == .connectionFailed && error?.errno == nil && error?.socketPath == path)
        #expect(error?.message.contains("socket path longer than") == true, "\(String(describing: error))")
    }

    /// The local kinds keep today's texts.
    @Test func localFailuresReadAsBefore() {
        let frame = ClientError.invalidFrame(ProtocolError(.malformedFrame, "Batch.step at offset 24: expected step 3, got 4"))
        #expect(frame.kind == .invalidFrame && frame.code == .malformedFrame)
        #expect(frame.description == "the daemon sent an invalid frame: malformed_frame (3): Batch.step at offset 24: expected step 3, got 4")
        #expect(frame.protocolError == ProtocolError(.malformedFrame, "Batch.step at offset 24: expected step 3, got 4"))
        let closed = ClientError.connectionClosed("the daemon closed the connection")
        #expect(closed.kind == .connectionClosed && closed.code == nil && closed.protocolError == nil)
        #expect(closed.description == "connection closed: the daemon closed the connection")
        let io = ClientError.io("send", errno: .brokenPipe)
        #expect(io.kind == .io && io.errno == .brokenPipe)
        #expect(io.description == "socket error: send: Broken pipe")
        #expect(ClientError.Kind(rawValue: "from_a_newer_client").description == "from_a_newer_client")
    }
}

/// The error `body` throws, or nil.
private func refusal(_ body: () throws(ClientError) -> Void) -> ClientError? {
    do throws(ClientError) {
        try body()
        return nil
    } catch { return error }
}
