#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import TokenfeedSystem

/// sd_notify(3) without libsystemd: a datagram to `$NOTIFY_SOCKET` (a path, or an abstract name
/// starting with `@`). Does nothing when the variable is unset (not run by systemd with `Type=notify`).
enum SystemdNotifier {
    static func notify(_ state: String) {
        guard let raw = getenv("NOTIFY_SOCKET") else { return }
        let path = String(cString: raw)
        guard !path.isEmpty else { return }
        let address = path.hasPrefix("@") ? try? UnixSocketAddress(abstractName: String(path.dropFirst()))
                                           : try? UnixSocketAddress(path: path)
        guard let address else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { _ = LibC.close(fd) }
        let message = Array(state.utf8)
        _ = address.withSockAddr { sockaddr, length in
            message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL), sockaddr, length) }
        }
    }
}
