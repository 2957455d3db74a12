#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage
import Testing
import TokenfeedSystem

@Suite struct UnixSocketAddressTests {
    @Test func aPathThatDoesNotFitIsRefused() throws {
        let longest = String(repeating: "x", count: UnixSocketAddress.maximumPathBytes)
        #expect(try UnixSocketAddress(path: longest).path == longest)
        #expect(throws: UnixSocketAddress.PathTooLong(path: longest + "y")) { try UnixSocketAddress(path: longest + "y") }
        #expect(try UnixSocketAddress(abstractName: "tokenfeed-test").description == "@tokenfeed-test")
    }

    @Test func bindsConnectsAndReadsBackItsPath() throws {
        var template = Array("/tmp/tokenfeed-address-XXXXXX".utf8CString)
        let folder = try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!).map { String(cString: $0) } })
        let address = try UnixSocketAddress(path: folder + "/s")
        defer { unlink(address.path); rmdir(folder) }
        let server = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { _ = LibC.close(server) }
        try address.bind(server)
        #expect(listen(server, 1) == 0)
        #expect(UnixSocketAddress.bound(to: server) == address)
        let second = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { _ = LibC.close(second) }
        #expect(throws: Errno.addressInUse) { try address.bind(second) }
        let client = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { _ = LibC.close(client) }
        try address.connect(client)
        let nowhere = try UnixSocketAddress(path: folder + "/none")
        let third = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { _ = LibC.close(third) }
        #expect(throws: Errno.noSuchFileOrDirectory) { try nowhere.connect(third) }
    }
}
