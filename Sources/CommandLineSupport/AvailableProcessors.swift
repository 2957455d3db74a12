#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage
import TokenfeedSystem

/// The number of CPUs this process may use: the CPUs of its affinity mask (`taskset`, Slurm's
/// `--cpus-per-task`, a container's cpuset), further limited by a cgroup CPU quota
/// (`cpu.max` in cgroup v2, `cpu.cfs_quota_us` / `cpu.cfs_period_us` in v1; Kubernetes' CPU limit),
/// rounded up, and at least 1. `ProcessInfo.activeProcessorCount` counts the machine's online CPUs
/// instead, which oversubscribes a job given two CPUs of a 128-CPU node.
public enum AvailableProcessors {
    /// The default of every `--jobs` option.
    public static var count: Int {
        var count = affinityCount() ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        if let quota = cgroupQuota() { count = min(count, quota) }
        return max(1, count)
    }

    /// CPUs in the affinity mask of this process (`Cpus_allowed_list` in `/proc/self/status`, as
    /// `sched_getaffinity` reports it), or nil when it cannot be read.
    static func affinityCount() -> Int? {
        guard let status = readSmallFile("/proc/self/status", limit: 1 << 16) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("Cpus_allowed_list:") {
            return parseCPUList(String(line.dropFirst("Cpus_allowed_list:".count)))
        }
        return nil
    }

    /// A kernel CPU list ("0-3,8,10-11") → the number of CPUs in it; nil when malformed or empty.
    static func parseCPUList(_ text: String) -> Int? {
        var count = 0
        for item in text.trimmed.split(separator: ",") {
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
            guard let low = Int(bounds[0]) else { return nil }
            let high = bounds.count == 2 ? Int(bounds[1]) : (bounds.count == 1 ? low : nil)
            guard let high, high >= low else { return nil }
            count += high - low + 1
        }
        return count > 0 ? count : nil
    }

    /// The CPU quota of this process's cgroup and its ancestors, in whole CPUs rounded up; nil
    /// when there is none (or no cgroup file system).
    static func cgroupQuota() -> Int? {
        guard let membership = readSmallFile("/proc/self/cgroup") else { return nil }
        var quotas: [Int] = []
        for line in membership.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            if fields[0] == "0" && fields[1].isEmpty {
                // cgroup v2: walk from the process's cgroup up to the root.
                var path = String(fields[2])
                while true {
                    let folder = "/sys/fs/cgroup" + (path == "/" ? "" : path)
                    if let text = readSmallFile(folder + "/cpu.max"), let quota = parseCPUMax(text) { quotas.append(quota) }
                    guard path != "/", !path.isEmpty, let slash = path.lastIndex(of: "/") else { break }
                    path = slash == path.startIndex ? "/" : String(path[..<slash])
                }
            } else if fields[1].split(separator: ",").contains("cpu") {
                // cgroup v1: the cpu controller's quota and period.
                for folder in ["/sys/fs/cgroup/cpu,cpuacct" + fields[2], "/sys/fs/cgroup/cpu" + fields[2], "/sys/fs/cgroup/cpu"] {
                    if let q = readSmallFile(folder + "/cpu.cfs_quota_us"), let p = readSmallFile(folder + "/cpu.cfs_period_us"),
                       let quota = Int(q.trimmed), let period = Int(p.trimmed), quota > 0, period > 0 {
                        quotas.append((quota + period - 1) / period)
                        break
                    }
                }
            }
        }
        return quotas.min()
    }

    /// `cpu.max`: "max 100000" (no quota) or "QUOTA PERIOD" in microseconds → CPUs rounded up.
    static func parseCPUMax(_ text: String) -> Int? {
        let fields = text.trimmed.split(separator: " ")
        guard fields.count == 2, let quota = Int(fields[0]), let period = Int(fields[1]), quota > 0, period > 0 else { return nil }
        return (quota + period - 1) / period
    }

    /// The first `limit` bytes of a file as text, or nil when it cannot be read (swift-system
    /// retries EINTR).
    static func readSmallFile(_ path: String, limit: Int = 4096) -> String? {
        guard let file = try? FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec]) else { return nil }
        defer { try? file.close() }
        guard let bytes = try? file.readToEnd(atMost: limit) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension String {
    fileprivate var trimmed: String {
        String(self.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
