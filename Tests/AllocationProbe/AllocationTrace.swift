import Foundation
import MallocInterposerSwift
import Synchronization

/// `--trace`: the call stacks of the first allocations counted, for finding what allocates. The hook
/// runs inside the allocator on the allocating thread: it records raw return addresses into storage
/// allocated up front, and one flag keeps a second thread (or a nested allocation) out meanwhile —
/// those allocations are counted but not traced.
enum AllocationTrace {
    static let depth = 24
    static let capacity = 4096
    nonisolated(unsafe) static var frames = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: depth * capacity)
    nonisolated(unsafe) static var depths = UnsafeMutablePointer<Int32>.allocate(capacity: capacity)
    static let recorded = Atomic<Int>(0)
    // execinfo.h is not in the Glibc module: looked up by name.
    typealias Backtrace = @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>?, Int32) -> Int32
    typealias BacktraceSymbols = @convention(c) (UnsafePointer<UnsafeMutableRawPointer?>?, Int32) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
    nonisolated(unsafe) static let backtrace = unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "backtrace"), to: Backtrace.self)
    nonisolated(unsafe) static let backtraceSymbols = unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "backtrace_symbols"), to: BacktraceSymbols.self)
    static let busy = Atomic<Bool>(false)

    static func install() {
        _ = backtrace(frames, Int32(depth))    // loads the unwinder before counting starts
        recorded.store(0, ordering: .relaxed)
        MallocInterposerSwift.setAllocationHook { _ in
            guard !AllocationTrace.busy.exchange(true, ordering: .acquiring) else { return }
            let index = AllocationTrace.recorded.load(ordering: .relaxed)
            if index < AllocationTrace.capacity {
                AllocationTrace.depths[index] = AllocationTrace.backtrace(AllocationTrace.frames + index * AllocationTrace.depth, Int32(AllocationTrace.depth))
                AllocationTrace.recorded.store(index + 1, ordering: .relaxed)
            }
            AllocationTrace.busy.store(false, ordering: .releasing)
        }
    }

    /// Prints the distinct stacks recorded, most frequent first, to standard error.
    static func report() {
        MallocInterposerSwift.setAllocationHook(nil)
        var counts: [String: Int] = [:]
        for i in 0 ..< recorded.load(ordering: .relaxed) {
            let n = Int(depths[i])
            guard let symbols = backtraceSymbols(frames + i * depth, Int32(n)) else { continue }
            var lines: [String] = []
            for k in 1 ..< n { lines.append(String(cString: symbols[k]!)) }
            free(symbols)
            counts[lines.joined(separator: "\n"), default: 0] += 1
        }
        for (stack, count) in counts.sorted(by: { $0.value > $1.value }).prefix(25) {
            FileHandle.standardError.write(Data("=== \(count) ×\n\(stack)\n".utf8))
        }
    }
}
