import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedProtocol
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The stream a daemon serves, opened once at startup, with everything the protocol says about it:
/// the Welcome's tables (stages, datasets and their shard paths), the token width and vocabulary,
/// the 64-bit fingerprint that cursors carry, and the shards quarantined at startup with their digest.
public final class ServedStream: Sendable {
    /// The opened global stream (curriculum, plan, dataset folders).
    public let stream: GlobalStream
    /// The protocol fingerprint: see ``StreamFingerprint``.
    public let fingerprint: UInt64
    /// What decides the stream's sequences, stage by stage: what cursors from other curricula are
    /// checked against (``CursorCompatibility``).
    public let description: StreamDescription
    /// Where descriptions of served streams are recorded (`<state-dir>/streams`), so that a refused
    /// cursor's stream can be named; nil without a state directory.
    public let recordDirectory: String?
    /// The shards left out of `stream` because they failed verification at startup.
    public let quarantine: ShardQuarantine
    /// The curriculum's stages with their token ranges, as the Welcome lists them.
    public let stages: [StageInfo]
    /// The curriculum's datasets with shard paths relative to the data root, as the Welcome lists them.
    public let datasets: [DatasetInfo]
    /// Bytes per token on the wire.
    public let tokenWidth: TokenfeedProtocol.TokenWidth
    /// Tokens a sequence counts for.
    public let sequenceLength: UInt32
    /// Vocabulary size announced in the Welcome (at least 1).
    public let vocabularySize: UInt32

    /// Describes an opened stream, from whose datasets the shards of `quarantine` were left out.
    /// - Precondition: the sequence length fits the protocol (below 2^24).
    public init(stream: GlobalStream, quarantine: ShardQuarantine = .none, recordDirectory: String? = nil) {
        precondition(stream.sequenceLength <= Int(Welcome.maxSequenceLength), "sequence length too large for the protocol")
        self.stream = stream
        self.quarantine = quarantine
        self.description = StreamDescription(stream: stream, quarantine: quarantine)
        self.fingerprint = description.fingerprint
        self.recordDirectory = recordDirectory
        self.stages = stream.curriculum.stages.map {
            StageInfo(name: $0.name, startToken: $0.startToken, endToken: $0.endToken)
        }
        self.datasets = stream.curriculum.datasets.indices.map { d in
            DatasetInfo(name: stream.curriculum.datasets[d].name,
                        shardPaths: stream.shardNames(dataset: d))
        }
        self.tokenWidth = stream.tokenWidth.bytes == 2 ? .u16 : .u32
        self.sequenceLength = UInt32(stream.sequenceLength)
        let maxVocabulary: UInt32 = tokenWidth == .u16 ? 65_536 : .max
        self.vocabularySize = min(max(1, stream.vocabularySize), maxVocabulary)
    }

    /// The recorded description of the stream with `fingerprint` (written by a daemon that served it
    /// with the same state directory), or nil.
    public func recordedDescription(of fingerprint: UInt64) -> StreamDescription? {
        guard let dir = recordDirectory, let text = try? readTextFile(StreamRecord.path(in: dir, fingerprint: fingerprint)) else { return nil }
        return StreamDescription(text: text)
    }

    /// Records this stream's description in ``recordDirectory`` (creating it), for cursors that come
    /// back under another curriculum.
    /// - Throws: `SystemCallError` (the folder) or `AtomicFileError` (the file), naming the failed step.
    public func writeRecord() throws {
        guard let dir = recordDirectory else { return }
        if mkdir(dir, 0o755) != 0, errno != EEXIST { throw SystemCallError("mkdir \(dir)") }
        try writeTextFileAtomically(StreamRecord.path(in: dir, fingerprint: fingerprint), description.text)
    }

    /// Steps in the whole run for a job of `worldSize × batchSize` sequences a step.
    public func stepCount(worldSize: UInt32, batchSize: UInt32) -> UInt64 {
        stream.plan.totalSequences / (UInt64(worldSize) * UInt64(batchSize))
    }

    /// The cursor at `step` of a job of `worldSize × batchSize`: this stream's fingerprint and
    /// quarantine digest.
    public func cursor(nextStep step: UInt64, worldSize: UInt32, batchSize: UInt32) -> Cursor {
        Cursor(fingerprint: fingerprint, nextStep: step, worldSize: worldSize, batchSize: batchSize, quarantineDigest: quarantine.digest)
    }

    /// The Welcome for a session that starts at `startCursor`.
    public func welcome(startCursor: Cursor) -> Welcome {
        Welcome(sequenceLength: sequenceLength, tokenWidth: tokenWidth, vocabularySize: vocabularySize,
                fingerprint: fingerprint, startCursor: startCursor, stages: stages, datasets: datasets)
    }
}

/// Where a stream's description is recorded: `<dir>/<fingerprint, 16 hex digits>.txt`.
enum StreamRecord {
    static func path(in dir: String, fingerprint: UInt64) -> String { "\(dir)/\(hex16(fingerprint)).txt" }
}
