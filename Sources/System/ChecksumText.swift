extension String {
    /// The text of a checksum that does not match: `String(format32: "checksum mismatch (stored", 0xbeef,
    /// ", computed", 0x1)` is "checksum mismatch (stored 0x0000beef, computed 0x00000001)" (8 hex digits each).
    public init(format32 first: String, _ x: UInt32, _ second: String, _ y: UInt32) {
        self = "\(first) 0x\(Hex.padded(x))\(second) 0x\(Hex.padded(y)))"
    }
}
