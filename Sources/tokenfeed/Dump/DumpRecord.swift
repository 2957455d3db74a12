import TokenfeedSystem

/// One served sequence as `tokenfeed dump` prints it. The offline and socket dumps build the same
/// value from their sources and print it with the same code, so their lines agree byte for byte.
struct DumpRecord {
    struct Piece {
        var shard: String
        var document: UInt64
        var offset: UInt64
        var length: UInt32
    }

    var step: UInt64
    var rank: Int
    var sequence: UInt64
    var stage: String
    var dataset: String
    var epoch: UInt32
    var tokens: [UInt32]
    var paddedTokens: Int
    var provenance: [Piece]

    /// Document boundaries within the row: 0, the end of each piece, ending at the row's token count
    /// (padding, when present, is its own final segment).
    var cuSeqlens: [Int] {
        var out = [0]
        for piece in provenance { out.append(out.last! + Int(piece.length)) }
        if paddedTokens > 0 { out.append(tokens.count) }
        return out
    }

    /// One JSON object on one line; keys in a fixed order.
    func json() -> String {
        var s = "{\"step\":\(step),\"rank\":\(rank),\"sequence\":\(sequence),\"stage\":\(JSONText.string(stage)),"
        s += "\"dataset\":\(JSONText.string(dataset)),\"epoch\":\(epoch),\"tokens\":["
        s += tokens.map(String.init).joined(separator: ",")
        s += "],\"cu_seqlens\":[" + cuSeqlens.map(String.init).joined(separator: ",") + "]"
        if paddedTokens > 0 {
            let unmasked = tokens.count - paddedTokens
            s += ",\"loss_mask\":[" + (0 ..< tokens.count).map { $0 < unmasked ? "1" : "0" }.joined(separator: ",") + "]"
        }
        s += ",\"provenance\":["
        s += provenance.map {
            "{\"shard\":\(JSONText.string($0.shard)),\"document\":\($0.document),\"offset\":\($0.offset),\"length\":\($0.length)}"
        }.joined(separator: ",")
        s += "]}"
        return s
    }

    /// A few readable lines for a person.
    func text(firstTokens: Int = 16) -> String {
        var s = "step \(step)  rank \(rank)  sequence \(sequence)  stage \(stage)  dataset \(dataset)  epoch \(epoch)\n"
        s += "  documents \(provenance.count)  cu_seqlens \(cuSeqlens.map(String.init).joined(separator: ","))"
        if paddedTokens > 0 { s += "  padding \(paddedTokens)" }
        s += "\n"
        for piece in provenance.prefix(8) {
            s += "  ← \(piece.shard) document \(piece.document) tokens \(piece.offset)..<\(piece.offset + UInt64(piece.length))\n"
        }
        if provenance.count > 8 { s += "  ← … \(provenance.count - 8) more pieces\n" }
        s += "  tokens " + tokens.prefix(firstTokens).map(String.init).joined(separator: " ")
        s += tokens.count > firstTokens ? " … (\(tokens.count))" : ""
        return s
    }
}
