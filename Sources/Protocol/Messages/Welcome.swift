import TokenfeedSystem

/// Daemon → client, the answer to an accepted Hello: the stream's shape and tables.
///
/// Payload (docs/PROTOCOL.md, "Welcome"):
/// ```
/// 0 u32 sequence_length  4 u8 token_width (2|4)  5 u8 reserved  6 u16 reserved  8 u32 vocabulary_size
/// 12 u32 reserved  16 u64 fingerprint  24 [56] start_cursor  80 u32 stage_count, stages…
/// then u32 dataset_count, datasets…
/// ```
public struct Welcome: WireMessage, Hashable {
    public static let messageType = MessageType.welcome
    /// Largest sequence length: a row of `sequence_length + 1` tokens must fit in 2^24 tokens.
    public static let maxSequenceLength: UInt32 = (1 << 24) - 1

    /// Tokens a sequence counts for; each row carries `sequenceLength + 1` tokens.
    public var sequenceLength: UInt32
    /// Bytes per token in Batch frames.
    public var tokenWidth: TokenWidth
    /// Vocabulary size of the tokenizer (every token id is below it).
    public var vocabularySize: UInt32
    /// Fingerprint of curriculum, shard manifest and seed; cursors carry it.
    public var fingerprint: UInt64
    /// The cursor at which this session's first batch starts.
    public var startCursor: Cursor
    /// The curriculum's stages, contiguous from token 0; Batch rows name them by index.
    public var stages: [StageInfo]
    /// The curriculum's datasets and their shard files; Batch rows and pieces name them by index.
    public var datasets: [DatasetInfo]

    /// Creates a Welcome.
    public init(sequenceLength: UInt32, tokenWidth: TokenWidth, vocabularySize: UInt32, fingerprint: UInt64,
                startCursor: Cursor, stages: [StageInfo], datasets: [DatasetInfo]) {
        self.sequenceLength = sequenceLength
        self.tokenWidth = tokenWidth
        self.vocabularySize = vocabularySize
        self.fingerprint = fingerprint
        self.startCursor = startCursor
        self.stages = stages
        self.datasets = datasets
    }

    public func encodePayload(into bytes: inout [UInt8]) {
        bytes.appendLE(sequenceLength)
        bytes.appendLE(tokenWidth.rawValue)
        bytes.appendLE(UInt8(0))
        bytes.appendLE(UInt16(0))
        bytes.appendLE(vocabularySize)
        bytes.appendLE(UInt32(0))
        bytes.appendLE(fingerprint)
        bytes.append(contentsOf: startCursor.bytes)
        bytes.appendLE(UInt32(stages.count))
        for stage in stages { stage.encode(into: &bytes) }
        bytes.appendLE(UInt32(datasets.count))
        for dataset in datasets { dataset.encode(into: &bytes) }
    }

    /// Decodes and validates a Welcome payload.
    /// - Throws: `malformed_frame` naming the field and offset; `bad_cursor` for the start cursor.
    public init(payload: UnsafeRawBufferPointer) throws(ProtocolError) {
        var r = ByteReader(payload, message: "Welcome")
        let lengthAt = r.position
        sequenceLength = try r.u32("sequence_length")
        guard sequenceLength >= 1, sequenceLength <= Welcome.maxSequenceLength else {
            throw r.failure("sequence_length", "must be in 1...\(Welcome.maxSequenceLength), got \(sequenceLength)", at: lengthAt)
        }
        let widthAt = r.position
        let width = try r.u8("token_width")
        guard let tokenWidth = TokenWidth(rawValue: width) else {
            throw r.failure("token_width", "must be 2 or 4, got \(width)", at: widthAt)
        }
        self.tokenWidth = tokenWidth
        try r.reserved(UInt8.self, "reserved")
        try r.reserved(UInt16.self, "reserved")
        let vocabAt = r.position
        vocabularySize = try r.u32("vocabulary_size")
        let maxVocab: UInt32 = tokenWidth == .u16 ? 65_536 : .max
        guard vocabularySize >= 1, vocabularySize <= maxVocab else {
            throw r.failure("vocabulary_size", "must be in 1...\(maxVocab) for \(width)-byte tokens, got \(vocabularySize)", at: vocabAt)
        }
        try r.reserved(UInt32.self, "reserved")
        fingerprint = try r.u64("fingerprint")
        let cursorAt = FrameHeader.size + r.position
        startCursor = try Cursor(bytes: try r.raw(Cursor.size, "start_cursor"), frameOffset: cursorAt)
        guard startCursor.fingerprint == fingerprint else {
            throw ProtocolError(.malformedFrame, "Welcome.start_cursor at offset \(cursorAt): fingerprint differs from Welcome.fingerprint")
        }
        stages = try StageInfo.decodeList(&r, field: "stages", requireContiguous: true)
        let datasetCount = try r.count("dataset_count", minimumElementSize: 6, range: 1...0xFFFF)
        var datasets: [DatasetInfo] = []
        datasets.reserveCapacity(datasetCount)
        for i in 0..<datasetCount { datasets.append(try DatasetInfo.decode(&r, index: i)) }
        self.datasets = datasets
        try r.expectEnd()
    }
}
