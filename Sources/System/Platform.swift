#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Musl)
@preconcurrency import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The C library's calls whose names our own methods shadow (`close`, `bind`, `connect`, `read`,
/// `write`, `open`, `exit`), under one spelling on every platform this package builds on (Glibc,
/// Musl, Darwin): the platform alias table.
///
/// Inside a type with a `close()` or `connect(path:)` method, a bare `close(fd)` resolves to the
/// method; the old fix, `Glibc.close(fd)`, compiled only on Glibc and left every `Musl` branch dead.
/// `LibC.close(fd)` resolves to whichever C library was imported above.
public enum LibC {
    /// close(2).
    @inlinable public static func close(_ fd: CInt) -> CInt { systemClose(fd) }
    /// read(2).
    @inlinable public static func read(_ fd: CInt, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
        systemRead(fd, buffer, count)
    }
    /// write(2).
    @inlinable public static func write(_ fd: CInt, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
        systemWrite(fd, buffer, count)
    }
    /// bind(2).
    @inlinable public static func bind(_ fd: CInt, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> CInt {
        systemBind(fd, address, length)
    }
    /// connect(2).
    @inlinable public static func connect(_ fd: CInt, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> CInt {
        systemConnect(fd, address, length)
    }
    /// exit(3): runs the `atexit` handlers and flushes stdio, then ends the process with `status`.
    public static func exit(_ status: CInt) -> Never { systemExit(status) }
}

// File scope, where no method shadows the C library's names.
@usableFromInline func systemClose(_ fd: CInt) -> CInt { close(fd) }
@usableFromInline func systemRead(_ fd: CInt, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int { read(fd, buffer, count) }
@usableFromInline func systemWrite(_ fd: CInt, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int { write(fd, buffer, count) }
@usableFromInline func systemBind(_ fd: CInt, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> CInt {
    bind(fd, address, length)
}
@usableFromInline func systemConnect(_ fd: CInt, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> CInt {
    connect(fd, address, length)
}
func systemExit(_ status: CInt) -> Never { exit(status) }
