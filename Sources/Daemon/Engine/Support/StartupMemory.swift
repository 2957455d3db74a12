#if canImport(Glibc)
/// glibc's `malloc_trim` (declared in `<malloc.h>`, which the Glibc module does not export).
@_silgen_name("malloc_trim")
private func trimMallocArenas(_ pad: Int) -> Int32
#endif

/// What opening a stream leaves behind in the allocator.
enum StartupMemory {
    /// Gives the free memory of glibc's arenas back to the system. Opening 72 datasets of thousands
    /// of shards decodes their manifests on many threads (an entry, a payload and a result a shard,
    /// all freed once the dataset's ``ShardTable`` is built); without this, the pages they used stay
    /// resident, about 30 bytes a shard (docs/BENCHMARKS.md, "Scale"). Called once, at the end of
    /// opening; a no-op where the C library is not glibc.
    static func releaseFreedMemory() {
        #if canImport(Glibc)
        _ = trimMallocArenas(0)
        #endif
    }
}
