import Testing
import TokenfeedMixing
import TokenfeedProtocol

@Suite struct FrameDecoderTests {
    static let stream: [UInt8] = Examples.frames.flatMap { $0.message.encodeFrame(requestID: $0.requestID) }
    static let expected: [Message] = Examples.frames.map(\.message)

    /// Drains every complete frame, checking each starts 64-byte aligned.
    func drain(_ decoder: FrameDecoder, into out: inout [Message]) throws {
        while let frame = try decoder.nextFrame() {
            #expect(Int(bitPattern: frame.bytes.baseAddress) % 64 == 0)
            out.append(try frame.message())
        }
    }

    @Test func streamSplitInTwoAtEveryBoundaryYieldsTheSameFrames() throws {
        let stream = Self.stream
        for split in 0...stream.count {
            let decoder = FrameDecoder(initialCapacity: 64)
            var out: [Message] = []
            try decoder.append(Array(stream[0..<split]))
            try drain(decoder, into: &out)
            try decoder.append(Array(stream[split...]))
            try drain(decoder, into: &out)
            #expect(out == Self.expected, "split at \(split)")
            #expect(decoder.bufferedBytes == 0)
        }
    }

    @Test func byteAtATimeAndRandomChunks() throws {
        let stream = Self.stream
        var rng = SplitMix64(seed: 3)
        for round in 0..<50 {
            let decoder = FrameDecoder(initialCapacity: 64)
            var out: [Message] = []
            var i = 0
            while i < stream.count {
                let n = round == 0 ? 1 : Int.random(in: 1...300, using: &rng)
                let end = min(i + n, stream.count)
                try decoder.append(Array(stream[i..<end]))
                if Bool.random(using: &rng) || end == stream.count { try drain(decoder, into: &out) }
                i = end
            }
            #expect(out == Self.expected)
        }
    }

    /// The recv_into path: the decoder offers exactly the bytes the current frame needs.
    @Test func receiveReadsExactlyWhatEachFrameNeeds() throws {
        let stream = Self.stream
        var rng = SplitMix64(seed: 4)
        for _ in 0..<20 {
            let decoder = FrameDecoder(initialCapacity: 64)
            var out: [Message] = []
            var position = 0
            while position < stream.count {
                let maxRead = Int.random(in: 1...200, using: &rng)
                let n = try decoder.receive { buffer in
                    let count = min(buffer.count, maxRead, stream.count - position)
                    buffer.copyBytes(from: stream[position..<(position + count)])
                    return count
                }
                position += n
                if let frame = try decoder.nextFrame() {
                    out.append(try frame.message())
                    #expect(decoder.bufferedBytes == 0, "receive read past the end of a frame")
                }
            }
            #expect(out == Self.expected)
        }
    }

    @Test func badMagicIsRejectedAfterFourBytes() {
        let decoder = FrameDecoder()
        let error = protocolError { try decoder.append([0x47, 0x45, 0x54, 0x20]) }  // "GET "
        #expect(error?.code == .badMagic)
        #expect(decoder.bytesNeeded == 0)
        // The decoder stays failed.
        #expect(protocolError { try decoder.append(Examples.credit.encodeFrame()) }?.code == .badMagic)
    }

    @Test func oversizeAndUnknownAreRejectedWithTheHeaderAlone() {
        var header = FrameHeader(type: .batch, payloadLength: (1 << 30) + 1).bytes
        #expect(protocolError { try FrameDecoder().append(header) }?.code == .oversizeFrame)

        var limits = FrameLimits()
        limits.batch = 1_000
        header = FrameHeader(type: .batch, payloadLength: 1_001).bytes
        #expect(protocolError { try FrameDecoder(limits: limits).append(header) }?.code == .oversizeFrame)

        header = FrameHeader(type: .credit, payloadLength: 5).bytes
        #expect(protocolError { try FrameDecoder().append(header) }?.code == .oversizeFrame)
        header = FrameHeader(type: .credit, payloadLength: 3).bytes
        #expect(protocolError { try FrameDecoder().append(header) }?.code == .malformedFrame)

        header = FrameHeader(type: .hello, payloadLength: 0).bytes
        header[6] = 99
        #expect(protocolError { try FrameDecoder().append(header) }?.code == .unknownMessageType)
        header[6] = 1; header[4] = 2
        let version = protocolError { try FrameDecoder().append(header) }
        #expect(version?.code == .unsupportedVersion)
        #expect(version?.message.contains("version 2") == true)
        header[4] = 1; header[8] = 1
        #expect(protocolError { try FrameDecoder().append(header) }?.code == .malformedFrame)
    }

    @Test func partialFrameReportsBytesNeeded() throws {
        let frame = Examples.hello.encodeFrame()
        let decoder = FrameDecoder()
        try decoder.append(Array(frame[0..<10]))
        #expect(decoder.bytesNeeded == 14)
        try decoder.append(Array(frame[10..<30]))
        #expect(decoder.bytesNeeded == frame.count - 30)
        #expect(try decoder.nextFrame() == nil)
        try decoder.append(Array(frame[30...]))
        #expect(decoder.bytesNeeded == 0)
        #expect(try decoder.nextFrame()?.header.type == .hello)
    }
}

extension FrameHeader {
    /// The 24 header bytes.
    var bytes: [UInt8] {
        var out: [UInt8] = []
        append(to: &out)
        return out
    }
}
