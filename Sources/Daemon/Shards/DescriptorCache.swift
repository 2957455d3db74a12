import SystemPackage
import TokenfeedSystem

/// The process-wide pool of open shard files: a shard's descriptor is opened when one of its pages
/// or frames is read and closed when it is the least recently used beyond the capacity (default
/// 256, well under a shell's 1,024; `--max-open-shards`). Descriptors in use by a read are never
/// closed under it (each entry counts its readers).
///
/// A descriptor opened again for a shard must show the inode and size the shard was opened with,
/// or the read fails naming the file (it was replaced). Running out of descriptors (`EMFILE`,
/// `ENFILE`) closes every idle descriptor and retries once, then fails naming the file and the limit.
public final class DescriptorCache: Sendable {
    /// The pool every ``ShardReader`` uses.
    public static let shared = DescriptorCache(capacity: 256)

    private struct Entry {
        var file: FileDescriptor
        var users: Int
        var tick: UInt64
    }

    private struct State {
        var entries: [UInt64: Entry] = [:]
        var capacity: Int
        var tick: UInt64 = 0
        var opens = 0
    }

    private let state: LockedValue<State>

    public init(capacity: Int) {
        state = LockedValue(State(capacity: max(1, capacity)))
    }

    /// The most descriptors kept open while idle (at least 1).
    public var capacity: Int { state.withLock { $0.capacity } }
    /// Descriptors open now.
    public var openCount: Int { state.withLock { $0.entries.count } }
    /// Files opened since the process started (tests and benchmarks).
    public var opens: Int { state.withLock { $0.opens } }

    /// Sets the capacity (at least 1) and closes idle descriptors beyond it.
    public func setCapacity(_ capacity: Int) {
        let closing = state.withLock { s in
            s.capacity = max(1, capacity)
            return Self.evict(&s, keeping: s.capacity)
        }
        for file in closing { try? file.close() }
    }

    /// Closes every idle descriptor (tests, and before running out).
    public func closeIdle() {
        for file in state.withLock({ s in Self.evict(&s, keeping: 0) }) { try? file.close() }
    }

    /// Runs `body` with an open descriptor of shard `id` (the file at `path`, which must have
    /// `identity`'s inode and size), opening it when no descriptor is held (`path` is only built then).
    /// - Throws: `ShardError` naming `path` when it cannot be opened, is no longer the file the shard
    ///   was opened from, or when no descriptor is left; or what `body` throws.
    func withDescriptor<R>(id: UInt64, path: @autoclosure () -> String, identity: FileIdentity,
                           _ body: (FileDescriptor) throws(ShardError) -> R) throws(ShardError) -> R {
        let held: FileDescriptor? = state.withLock { s in
            guard var entry = s.entries[id] else { return nil }
            s.tick += 1
            entry.users += 1
            entry.tick = s.tick
            s.entries[id] = entry
            return entry.file
        }
        let file: FileDescriptor
        if let held {
            file = held
        } else {
            let opened = try open(path: path(), identity: identity)
            let (use, extra, closing): (FileDescriptor, FileDescriptor?, [FileDescriptor]) = state.withLock { s in
                s.tick += 1
                s.opens += 1
                if var entry = s.entries[id] {            // another thread opened it meanwhile
                    entry.users += 1
                    entry.tick = s.tick
                    s.entries[id] = entry
                    return (entry.file, opened, [])
                }
                s.entries[id] = Entry(file: opened, users: 1, tick: s.tick)
                return (opened, nil, Self.evict(&s, keeping: s.capacity))
            }
            try? extra?.close()
            for f in closing { try? f.close() }
            file = use
        }
        defer {
            let closing = state.withLock { s in
                // Get and set, not `s.entries[id]?.users -= 1`: that nests three `_modify` coroutines
                // whose frames are allocated — three mallocs per frame read (AllocationProbe).
                if var entry = s.entries[id] {
                    entry.users -= 1
                    s.entries[id] = entry
                }
                return Self.evict(&s, keeping: s.capacity)
            }
            for f in closing { try? f.close() }
        }
        return try body(file)
    }

    /// Opens `path` read-only and checks it is the shard's file; on `EMFILE`/`ENFILE` closes the
    /// idle descriptors and tries once more.
    private func open(path: String, identity: FileIdentity) throws(ShardError) -> FileDescriptor {
        var retried = false
        while true {
            let file: FileDescriptor
            do {
                file = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
            } catch let error as Errno where (error == .tooManyOpenFiles || error == .tooManyOpenFilesInSystem) {
                if retried {
                    throw ShardError(path: path, "cannot open: \(error) (\(openCount) shard files open, --max-open-shards \(capacity)); raise the descriptor limit (ulimit -n, LimitNOFILE) or lower --max-open-shards")
                }
                closeIdle()
                retried = true
                continue
            } catch {
                throw ShardError(path: path, "cannot open: \(error)")
            }
            let found: FileIdentity
            do { found = try FileIdentity.of(file) } catch {
                try? file.close()
                throw ShardError(path: path, "cannot stat: \(error)")
            }
            guard found.inode == identity.inode, found.size == identity.size else {
                try? file.close()
                throw ShardError(path: path, "the file changed since the shard was opened (inode \(identity.inode) → \(found.inode), size \(identity.size) → \(found.size)): replaced while in use; restart to serve the new file")
            }
            return file
        }
    }

    /// Removes the least recently used idle entries until at most `keeping` remain (or only
    /// entries in use); returns their descriptors, to close outside the lock.
    private static func evict(_ s: inout State, keeping: Int) -> [FileDescriptor] {
        guard s.entries.count > keeping else { return [] }
        var idle = s.entries.filter { $0.value.users == 0 }.map { (id: $0.key, tick: $0.value.tick) }
        idle.sort { $0.tick < $1.tick }
        var closing: [FileDescriptor] = []
        for victim in idle {
            if s.entries.count <= keeping { break }
            if let entry = s.entries.removeValue(forKey: victim.id) { closing.append(entry.file) }
        }
        return closing
    }
}
