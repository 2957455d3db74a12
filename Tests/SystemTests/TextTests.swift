import Testing
import TokenfeedSystem

@Suite struct TextTests {
    @Test func hexPadsToTheTypesWidth() {
        #expect(Hex.padded(UInt8(0x5)) == "05")
        #expect(Hex.padded(UInt16(0x1F)) == "001f")
        #expect(Hex.padded(UInt32(0xBEEF)) == "0000beef")
        #expect(Hex.padded(UInt64.max) == "ffffffffffffffff")
        #expect(Hex.padded(UInt128(1)) == String(repeating: "0", count: 31) + "1")
        #expect(Hex.padded(UInt8(0xAB), uppercase: true) == "AB")
        #expect(Hex.bytes([0x54, 0x4B, 0x46, 0x44], separator: " ") == "54 4b 46 44")
        #expect(Hex.bytes([0x00, 0xFF]) == "00ff")
    }

    @Test func jsonStringEscapes() {
        #expect(JSONText.string("plain") == "\"plain\"")
        #expect(JSONText.string("a\"b\\c") == "\"a\\\"b\\\\c\"")
        #expect(JSONText.string("\n\r\t") == "\"\\n\\r\\t\"")
        #expect(JSONText.string("\u{01}\u{1F}") == "\"\\u0001\\u001f\"")
        #expect(JSONText.string("é ✓") == "\"é ✓\"")
    }
}

@Suite struct ChecksumTextTests {
    @Test func namesBothValuesInEightDigits() {
        #expect(String(format32: "checksum mismatch (stored", 0xBEEF, ", computed", 1)
                == "checksum mismatch (stored 0x0000beef, computed 0x00000001)")
    }
}
