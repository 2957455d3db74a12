import Foundation
import Testing
import TokenfeedProtocol
import TokenfeedSystem

/// The worked examples of docs/PROTOCOL.md are kept byte for byte in Tests/ProtocolVectors/*.hex:
/// encoding the example messages gives exactly those bytes, decoding those bytes gives the
/// messages, and the doc shows the same text. `TOKENFEED_WRITE_VECTORS=1` regenerates the files.
@Suite struct VectorTests {
    static let writing = ProcessInfo.processInfo.environment["TOKENFEED_WRITE_VECTORS"] == "1"

    func vector(_ name: String, title: String, bytes: [UInt8]) throws -> String {
        let url = vectorDirectory.appendingPathComponent("\(name).hex")
        let expected = hexFileText(title: title, bytes: bytes)
        if Self.writing { try expected.write(to: url, atomically: true, encoding: .utf8) }
        return try String(contentsOf: url, encoding: .utf8)
    }

    @Test(arguments: Examples.frames.map(\.name))
    func frameVectorMatchesEncoderBothWays(name: String) throws {
        let example = try #require(Examples.frames.first { $0.name == name })
        let encoded = example.message.encodeFrame(requestID: example.requestID)
        let text = try vector(name, title: "\(example.message.type) frame (docs/PROTOCOL.md)", bytes: encoded)
        let bytes = try #require(parseHexFile(text))
        #expect(bytes == encoded, "encoder output differs from Tests/ProtocolVectors/\(name).hex")
        let (header, message) = try Message.decode(frame: bytes)
        #expect(header.requestID == example.requestID)
        #expect(header.type == example.message.type)
        #expect(message == example.message)
    }

    @Test func cursorVectorsMatchBothWays() throws {
        let cursor = Examples.resumeCursor
        let text = try vector("cursor", title: "Cursor (docs/PROTOCOL.md)", bytes: cursor.bytes)
        #expect(try #require(parseHexFile(text)) == cursor.bytes)
        #expect(try Cursor(bytes: try #require(parseHexFile(text))) == cursor)
        let url = vectorDirectory.appendingPathComponent("cursor.txt")
        if Self.writing { try (cursor.text + "\n").write(to: url, atomically: true, encoding: .utf8) }
        let file = try String(contentsOf: url, encoding: .utf8)
        #expect(file == cursor.text + "\n")
        #expect(try Cursor(text: file) == cursor)
    }

    @Test func protocolDocShowsEveryVectorVerbatim() throws {
        let doc = try String(contentsOf: repositoryRoot.appendingPathComponent("docs/PROTOCOL.md"), encoding: .utf8)
        let names = Examples.frames.map { "\($0.name).hex" } + ["cursor.hex", "cursor.txt"]
        for name in names {
            let text = try String(contentsOf: vectorDirectory.appendingPathComponent(name), encoding: .utf8)
            #expect(doc.contains(text), "docs/PROTOCOL.md does not show Tests/ProtocolVectors/\(name) verbatim")
        }
    }

    @Test func crc32MatchesTheStandardCheckValue() {
        #expect(crc32(Array("123456789".utf8)) == 0xCBF4_3926)
    }

    @Test func batchExampleTokenBlockIsAlignedAndViewable() throws {
        let frame = Examples.frames.first { $0.name == "batch" }!.message.encodeFrame()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: frame.count, alignment: 64)
        defer { buffer.deallocate() }
        buffer.copyBytes(from: frame)
        let view = try BatchView(frame: UnsafeRawBufferPointer(buffer))
        #expect(view.layout.tokenOffset == 320)
        #expect(view.layout.tokenOffset % 64 == 0)
        let tokens = view.withTokens16 { Array($0) }
        #expect(tokens.map(UInt32.init) == Examples.batch.tokens)
        #expect(Array(view.cuSeqlens(row: 0)) == [0, 5, 8])
        #expect(Array(view.cuSeqlens(row: 1)) == [0, 6, 8])
        #expect(view.row(1).paddedTokens == 2)
        #expect(view.row(0).sequenceIndex == 14)
        #expect(view.cursorAfter == Cursor(fingerprint: Examples.fingerprint, nextStep: 4, worldSize: 2, batchSize: 2))
    }
}
