/// Checks a shard completely: structure, metadata checksum, every frame's CRC-32, and that every
/// frame decompresses (with zstd's content checksum) to exactly its token count.
public enum ShardVerifier {
    /// All problems found in the shard at `path`, one per bad frame; empty when it is good.
    public static func verify(path: String) -> [ShardError] {
        let reader: ShardReader
        do { reader = try ShardReader(path: path) } catch { return [error] }
        let metadata = reader.metadata
        let width = metadata.tokenWidth.bytes
        // Sized from the frames present (at most min(tokens_per_frame, token_count) tokens), not the declaration.
        let frameTokens = Int(min(UInt64(metadata.tokensPerFrame), metadata.tokenCount))
        let frameBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(frameTokens * width, 1), alignment: 64)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: max(reader.largestFrame, 1), alignment: 64)
        defer { frameBuffer.deallocate(); scratch.deallocate() }
        let decompressor = ZstdDecompressor()
        var problems: [ShardError] = []
        for k in metadata.frames.indices {
            do {
                try reader.decodeFrame(k, into: frameBuffer, scratch: scratch, decompressor: decompressor)
                if metadata.vocabularySize > 0 {
                    let count = metadata.tokenRange(ofFrame: k).count
                    for i in 0 ..< count {
                        let id = width == 2
                            ? UInt32(UInt16(littleEndian: frameBuffer.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
                            : UInt32(littleEndian: frameBuffer.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))
                        if id >= metadata.vocabularySize {
                            problems.append(ShardError(path: path, frame: k, "token \(i) of the frame has id \(id), not below the vocabulary size \(metadata.vocabularySize)"))
                            break
                        }
                    }
                }
            } catch {
                problems.append(error)
            }
        }
        return problems
    }
}
