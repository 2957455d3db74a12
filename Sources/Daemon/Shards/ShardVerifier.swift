import TokenfeedSystem

/// Checks a shard completely: structure, metadata checksum, the index frame (its header, every
/// page's CRC-32 and entries, that pages join up, the section checksums the metadata records),
/// every frame's CRC-32, and that every frame decompresses (with zstd's content checksum) to
/// exactly its token count.
public enum ShardVerifier {
    /// All problems found in the shard at `path`, one per bad page or frame; empty when it is good.
    public static func verify(path: String) -> [ShardError] {
        let reader: ShardReader
        do { reader = try ShardReader(path: path) } catch { return [error] }
        var problems = verifyIndex(reader)
        guard problems.isEmpty else { return problems }
        let metadata = reader.metadata
        let width = metadata.tokenWidth.bytes
        // Sized from the frames present (at most min(tokens_per_frame, token_count) tokens), not the declaration.
        let frameTokens = Int(min(UInt64(metadata.tokensPerFrame), metadata.tokenCount))
        let frameBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(frameTokens * width, 1), alignment: 64)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: max(reader.largestFrame, 1), alignment: 64)
        defer { frameBuffer.deallocate(); scratch.deallocate() }
        let decompressor = ZstdDecompressor()
        for k in 0 ..< metadata.frameCount {
            do {
                try reader.decodeFrame(k, into: frameBuffer, scratch: scratch, decompressor: decompressor)
                if metadata.vocabularySize > 0 {
                    let count = metadata.tokenRange(ofFrame: k).count
                    for i in 0 ..< count {
                        let id = width == 2
                            ? UInt32(frameBuffer.loadLE(i * 2, as: UInt16.self))
                            : frameBuffer.loadLE(i * 4, as: UInt32.self)
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

    /// The index frame's problems: its skippable header and tag, each page, the joins between
    /// pages, and each section's CRC-32 against the metadata.
    static func verifyIndex(_ reader: ShardReader) -> [ShardError] {
        let path = reader.path, metadata = reader.metadata, layout = metadata.indexLayout
        var problems: [ShardError] = []
        do {
            let prefix = try reader.withDescriptor { (file) throws(ShardError) in
                try ShardEnvelope.readBytes(file, path, at: metadata.indexOffset, count: ShardFormat.indexPrefixSize)
            }
            let payload = layout.start(.documentEnds) + (IndexSection.documentEnds.bytes(entries: UInt64(metadata.documentCount)) ?? 0)
                - metadata.indexOffset - UInt64(ShardFormat.skippableHeaderSize)
            var expected = LittleEndianWriter()
            expected.append(ShardFormat.skippableMagic)
            expected.append(UInt32(truncatingIfNeeded: payload))
            expected.append(bytes: ShardFormat.indexTag)
            if prefix != expected.bytes {
                problems.append(ShardError(path: path, field: "index", "index: the frame at \(metadata.indexOffset) is not a TFINDEX skippable frame of \(payload) bytes"))
            }
        } catch { problems.append(error) }
        for section in [IndexSection.frameTable, .documentEnds] {
            var crc: UInt32 = 0
            var previousLast: UInt64?
            for p in 0 ..< section.pageCount(entries: layout.entries(section)) {
                let (offset, size, _, _) = layout.page(section, p)
                do {
                    let bytes = try reader.withDescriptor { (file) throws(ShardError) in try ShardEnvelope.readBytes(file, path, at: offset, count: size) }
                    crc = withBytes(of: bytes) { crc32(UnsafeRawBufferPointer(rebasing: $0[..<(size - 4)]), continuing: crc) }
                    let page = try reader.page(section, p)
                    if section == .documentEnds {
                        if let previousLast, page.previousEnd != previousLast {
                            problems.append(ShardError(path: path, field: section.field, "index: \(section.field) page \(p): starts after \(page.previousEnd), the previous page ends at \(previousLast)"))
                        }
                        previousLast = page.lastEnd
                    } else {
                        let first = page.frame(0).offset, last = page.frame(page.count - 1)
                        if let previousLast, first != previousLast {
                            problems.append(ShardError(path: path, field: section.field, "index: \(section.field) page \(p): frame \(page.firstEntry) starts at \(first), the previous frame ends at \(previousLast)"))
                        }
                        previousLast = last.offset + UInt64(last.compressedSize)
                    }
                } catch { problems.append(error) }
            }
            let recorded = section == .frameTable ? metadata.frameTableChecksum : metadata.documentEndsChecksum
            if problems.isEmpty, crc != recorded {
                problems.append(ShardError(path: path, field: section.field, "index: \(section.field): " + String(format32: "section checksum mismatch (metadata says", recorded, ", computed", crc)))
            }
        }
        return problems
    }
}
