#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Sets `O_NONBLOCK` on `fd`, keeping its other status flags. A descriptor that is not open is left
/// as it is (its next call fails with `EBADF`).
public func setNonBlocking(_ fd: CInt) {
    let flags = fcntl(fd, F_GETFL)
    guard flags >= 0 else { return }
    _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
}
