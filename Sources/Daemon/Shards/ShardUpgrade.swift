import SystemPackage
import TokenfeedSystem
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Rewrites a format version 1 or 2 shard as version 3 (`tokenfeed shard upgrade`): the header
/// with the new version, the data frames copied byte for byte (never recompressed, so they keep
/// their offsets and CRCs), then the new index, metadata and footer. Written to `PATH.partial`,
/// synced and renamed over `PATH`, so a crash leaves either shard, never half of one.
public enum ShardUpgrade {
    /// What ``upgrade(path:)`` did.
    public enum Outcome: Sendable, Hashable {
        /// The shard was rewritten from this version.
        case upgraded(from: UInt16)
        /// The shard was already version 3 (checked as a reader opens it) and left alone.
        case alreadyCurrent
    }

    /// Upgrades the shard at `path` in place.
    /// - Throws: `ShardError` naming the file (and field) when it is not a readable shard of any
    ///   version, or when the new file cannot be written or renamed into place.
    public static func upgrade(path: String) throws(ShardError) -> Outcome {
        let file = try openForReading(path)
        defer { try? file.close() }
        let identity: FileIdentity
        do { identity = try FileIdentity.of(file) } catch { throw ShardError(path: path, "cannot stat: \(error)") }
        let envelope = try ShardEnvelope.read(file, path: path, size: identity.size)
        if ShardFormat.readableVersions.contains(envelope.version) {
            _ = try envelope.metadata(path: path)
            return .alreadyCurrent
        }
        let old = try withBytes(of: envelope.metadataPayload) { (b) throws(ShardError) in
            try LegacyShardMetadata.decode(payload: b, path: path, dataEnd: envelope.metadataOffset)
        }
        try envelope.checkAgainstHeader(old.formatVersion, old.tokenWidth, old.tokensPerFrame, path: path)
        let dataEnd = envelope.metadataOffset
        let (tail, _) = try ShardTail.encode(path: path, tokenWidth: old.tokenWidth, tokensPerFrame: old.tokensPerFrame,
                                             vocabularySize: old.vocabularySize, tokenCount: old.tokenCount, frames: old.frames,
                                             documentEnds: old.documentEnds, tokenizer: old.tokenizer, indexOffset: dataEnd)
        let partial = path + ".partial"
        let out: FileDescriptor
        do {
            out = try FileDescriptor.open(FilePath(partial), .writeOnly, options: [.create, .truncate, .closeOnExec],
                                          permissions: [.ownerReadWrite, .groupRead, .otherRead])
        } catch {
            throw ShardError(path: partial, "cannot create: \(error)")
        }
        var done = false
        defer {
            try? out.close()
            if !done { _ = unlink(partial) }
        }
        func write(_ bytes: UnsafeRawBufferPointer) throws(ShardError) {
            do { _ = try out.writeAll(bytes) } catch { throw ShardError(path: partial, "write failed: \(error)") }
        }
        try withBytes(of: ShardTail.header(tokenWidth: old.tokenWidth, tokensPerFrame: old.tokensPerFrame)) { (b) throws(ShardError) in try write(b) }
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
        defer { chunk.deallocate() }
        var at = UInt64(ShardFormat.headerFrameSize)
        while at < dataEnd {
            let n = Int(min(UInt64(chunk.count), dataEnd - at))
            let got: Int
            do { got = try file.readFully(at: at, into: UnsafeMutableRawBufferPointer(rebasing: chunk[..<n])) } catch {
                throw ShardError(path: path, "read of data frames at \(at) failed: \(error)")
            }
            guard got == n else { throw ShardError(path: path, "file ends at byte \(at + UInt64(got)) inside the data frames") }
            try write(UnsafeRawBufferPointer(rebasing: chunk[..<n]))
            at += UInt64(n)
        }
        try withBytes(of: tail) { (b) throws(ShardError) in try write(b) }
        do { try out.sync() } catch { throw ShardError(path: partial, "fsync failed: \(error)") }
        do { _ = try systemCall { rename(partial, path) } } catch {
            throw ShardError(path: path, "cannot rename \(partial) into place: \(error)")
        }
        done = true
        return .upgraded(from: old.formatVersion)
    }
}
