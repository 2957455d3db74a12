import TokenfeedSystem

/// One curriculum stage as the protocol describes it: a name and its half-open token range
/// `[startToken, endToken)` in the global stream (global sequence i starts at token i × sequence_length,
/// so the stage's first sequence is the first i with i × sequence_length ≥ startToken).
public struct StageInfo: Sendable, Hashable {
    /// Longest stage name in UTF-8 bytes.
    public static let maxNameBytes = 256
    /// Stage name from the curriculum (e.g. "stable").
    public var name: String
    /// First token of the stage.
    public var startToken: UInt64
    /// Token where the next stage starts; `UInt64.max` when the last stage is open-ended.
    public var endToken: UInt64

    /// Creates a stage description.
    public init(name: String, startToken: UInt64, endToken: UInt64) {
        self.name = name
        self.startToken = startToken
        self.endToken = endToken
    }

    func encode(into bytes: inout [UInt8]) {
        bytes.appendLE(startToken)
        bytes.appendLE(endToken)
        bytes.appendString16(name, maxBytes: StageInfo.maxNameBytes, field: "stage.name")
    }

    /// Reads a stage list (u32 count, then entries) with the given field prefix, e.g. "stages".
    static func decodeList(_ r: inout ByteReader, field: String,
                           requireContiguous: Bool) throws(ProtocolError) -> [StageInfo] {
        let count = try r.count(field + ".count", minimumElementSize: 18, range: (requireContiguous ? 1 : 0)...0xFFFF)
        var stages: [StageInfo] = []
        stages.reserveCapacity(count)
        for i in 0..<count {
            let at = r.position
            let start = try r.u64("\(field)[\(i)].start_token")
            let end = try r.u64("\(field)[\(i)].end_token")
            let name = try r.string16("\(field)[\(i)].name", maxBytes: maxNameBytes)
            if requireContiguous {
                let expectedStart = i == 0 ? 0 : stages[i - 1].endToken
                guard start == expectedStart else {
                    throw r.failure("\(field)[\(i)].start_token", "must be \(expectedStart) (stages are contiguous from token 0), got \(start)", at: at)
                }
                guard end > start else {
                    throw r.failure("\(field)[\(i)].end_token", "must be greater than start_token \(start), got \(end)", at: at + 8)
                }
            }
            stages.append(StageInfo(name: name, startToken: start, endToken: end))
        }
        return stages
    }
}
