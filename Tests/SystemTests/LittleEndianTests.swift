import Testing
import TokenfeedSystem

@Suite struct LittleEndianTests {
    @Test func readsWhatTheWriterWrote() throws {
        var bytes: [UInt8] = []
        bytes.appendLE(UInt8(0xAB))
        bytes.appendLE(UInt16(0x1234))
        bytes.appendLE(UInt32(0xDEAD_BEEF))
        bytes.appendLE(Int64(-2))
        bytes.appendLE(1.5)
        bytes.appendVarint(300)
        bytes.appendVarint(UInt64.max)
        #expect(Array(bytes[0 ..< 7]) == [0xAB, 0x34, 0x12, 0xEF, 0xBE, 0xAD, 0xDE])
        try withBytes(of: bytes) { (raw) throws(LittleEndianError) in
            var r = LittleEndianReader(raw)
            #expect(try r.read(UInt8.self, "a") == 0xAB)
            #expect(try r.read(UInt16.self, "b") == 0x1234)
            #expect(try r.read(UInt32.self, "c") == 0xDEAD_BEEF)
            #expect(try r.read(Int64.self, "d") == -2)
            #expect(Double(bitPattern: try r.read(UInt64.self, "e")) == 1.5)
            #expect(try r.readVarint("f") == 300)
            #expect(try r.readVarint("g") == UInt64.max)
            #expect(r.remaining == 0)
        }
    }

    @Test func aTruncatedReadNamesTheFieldAndItsOffset() {
        let bytes: [UInt8] = [1, 0, 0, 0, 9, 9]
        bytes.withUnsafeBytes { raw in
            var r = LittleEndianReader(raw, baseOffset: 24)
            #expect((try? r.read(UInt32.self, "rank")) == 1)
            do throws(LittleEndianError) {
                _ = try r.read(UInt32.self, "world_size")
                Issue.record("read past the end")
            } catch {
                #expect(error == LittleEndianError(field: "world_size", offset: 28, problem: "truncated: needs 4 bytes, 2 left"))
                #expect(error.description == "world_size at offset 28: truncated: needs 4 bytes, 2 left")
            }
            #expect(r.offset == 4, "a failed read consumes nothing")
            #expect(throws: LittleEndianError(field: "name", offset: 28, problem: "truncated: needs 3 bytes, 2 left")) {
                try r.read(bytes: 3, "name")
            }
            #expect(r.read(UInt64.self) == nil)
            #expect(r.readBytes(3) == nil)
        }
    }

    @Test func badVarintsNameTheFieldAndWhereTheyStart() {
        let truncated: [UInt8] = [0x00, 0x80, 0x80]
        truncated.withUnsafeBytes { raw in
            var r = LittleEndianReader(raw, baseOffset: 100)
            #expect((try? r.readVarint("first")) == 0)
            #expect(throws: LittleEndianError(field: "length", offset: 101, problem: "truncated varint")) { try r.readVarint("length") }
        }
        let tooLong = [UInt8](repeating: 0xFF, count: 9) + [0x02]
        tooLong.withUnsafeBytes { raw in
            var r = LittleEndianReader(raw)
            #expect(throws: LittleEndianError(field: "length", offset: 0, problem: "varint longer than 64 bits")) { try r.readVarint("length") }
        }
    }

    @Test func storeOverwritesInPlace() {
        var bytes = [UInt8](repeating: 0, count: 8)
        bytes.storeLE(UInt32(0x0102_0304), at: 2)
        #expect(bytes == [0, 0, 4, 3, 2, 1, 0, 0])
        var writer = LittleEndianWriter()
        writer.append(UInt16(0xBEEF))
        writer.appendVarint(127)
        writer.append(bytes: [7])
        #expect(writer.bytes == [0xEF, 0xBE, 0x7F, 7])
    }
}
