import Testing
import TokenfeedSystem

/// Known vectors: CRC-32 check value from the CRC catalogue (and zlib.crc32), FNV-1a from the
/// reference test suite (isthe.com/chongo/tech/comp/fnv).
@Suite struct ChecksumTests {
    @Test func crc32KnownValues() {
        #expect(crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(crc32([]) == 0)
        #expect(crc32(Array("The quick brown fox jumps over the lazy dog".utf8)) == 0x414F_A339)
    }

    @Test func crc32Continues() {
        let a = Array("12345".utf8), b = Array("6789".utf8)
        #expect(crc32(b, continuing: crc32(a)) == crc32(a + b))
    }

    @Test func fnv1a64KnownValues() {
        #expect(FNV1a64.hash("") == 0xcbf2_9ce4_8422_2325)
        #expect(FNV1a64.hash("a") == 0xaf63_dc4c_8601_ec8c)
        #expect(FNV1a64.hash("foobar") == 0x8594_4171_f739_67e8)
        var running = FNV1a64()
        running.add("foo".utf8)
        running.add("bar".utf8)
        #expect(running.value == FNV1a64.hash("foobar"))
    }

    @Test func fnv1a128KnownValues() {
        #expect(FNV1a128.hash("a".utf8) == 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964)
        #expect(FNV1a128.hash("foobar".utf8) == 0x343e_1662_793c_64bf_6f0d_3597_ba44_6f18)
    }
}
