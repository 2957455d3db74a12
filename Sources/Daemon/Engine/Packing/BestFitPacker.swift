import TokenfeedShards

/// One run of one document inside a packed group: `length` tokens of document `document` of the
/// group's shard, starting at token `offset` of the shard's token stream.
struct GroupPiece: Sendable, Hashable {
    var document: Int
    var offset: UInt64
    var length: UInt32
}

/// Packs one group of consecutive documents of a shard into rows of `rowTokens` tokens, best fit
/// decreasing. Metadata only (document lengths); all buffers are reused from group to group.
///
/// The algorithm, for documents `[first, first + n)`:
/// 1. A document of `len` tokens gives `⌊len / R⌋` *full chunks* (tokens `[c·R, (c+1)·R)` of it;
///    each is a row of its own) and, when `len mod R > 0`, one *item*: its last `len mod R` tokens.
///    Documents of at most `R` tokens are never split; empty documents give nothing.
/// 2. Items are placed in decreasing length, ties by stream position (earlier document first).
///    Each goes into the open row with the least room that can still hold it; among rows with the
///    same room, the one that reached that room last; when none can hold it, it opens a new row.
/// 3. The group's rows are its full chunks and its item rows; a row's pieces are in stream order
///    (document, then offset), and rows are ordered by the stream position of their first piece.
///
/// Any two item rows of a group hold more than `R` tokens together (an item opens a new row only
/// when no open row can hold it, and rows only fill up), so a group wastes less than one row per
/// two rows.
struct BestFitPacker: Sendable {
    /// Tokens in a row: `sequenceLength + 1`.
    let rowTokens: Int

    /// Rows of the last packed group.
    private(set) var rowCount = 0
    /// Pieces of the last materialised group, row after row (see ``rowStarts``).
    private(set) var pieces: [GroupPiece] = []
    /// `rowCount + 1` entries: row `r`'s pieces are `pieces[rowStarts[r] ..< rowStarts[r + 1]]`.
    private(set) var rowStarts: [Int] = []
    /// Tokens of documents in row `r` of the last materialised group (the rest is padding).
    private(set) var rowFill: [Int] = []

    // The last packed group: its documents' ends, and where its first document starts.
    private var groupEnds: [UInt64] = []
    private var groupStart: UInt64 = 0
    private var firstDocument = 0
    private var documentCount = 0
    private var fullRows = 0
    private var binCount = 0

    // Scratch, reused.
    private var keys: [UInt64] = []            // (R − item length) << 32 | document in group
    private var itemBin: [Int32] = []          // per document in group: its item's row, or −1
    private var binRoom: [Int32] = []          // per item row: tokens still free
    private var binLink: [Int32] = []          // per item row: next row of the same room (a stack)
    private var binFirst: [Int32] = []         // per item row: its first document in group
    private var binMemberStart: [Int32] = []   // per item row: start in binMembers (counting sort)
    private var binMembers: [Int32] = []       // documents in group, grouped by row, in stream order
    private var binFillAt: [Int32] = []        // per item row: next free place in binMembers
    private var roomHead: [Int32]              // per room 0…R: top of the stack of rows with that room
    private var roomBits: [UInt64]             // which rooms have a row
    private var rowKeys: [UInt64] = []         // document in group << 32 | chunk index of a row's first piece

    init(rowTokens: Int) {
        precondition(rowTokens >= 2 && rowTokens < Int(Int32.max), "row of \(rowTokens) tokens")
        self.rowTokens = rowTokens
        roomHead = Array(repeating: -1, count: rowTokens + 1)
        roomBits = Array(repeating: 0, count: (rowTokens + 1 + 63) / 64)
    }

    /// Packs documents `[first, first + count)` of a shard and returns how many rows they fill.
    /// Call ``materialize()`` afterwards for the rows' pieces. The group's document ends are read
    /// from the shard's index pages (through the page cache) into a reused buffer.
    /// - Throws: `ShardError` when an index page cannot be read or is corrupt.
    @discardableResult
    mutating func pack(_ shard: ShardReader, documents range: Range<Int>) throws(ShardError) -> Int {
        precondition(range.lowerBound >= 0 && range.upperBound <= shard.metadata.documentCount)
        let R = rowTokens
        groupEnds.removeAll(keepingCapacity: true)
        if !range.isEmpty {
            groupStart = try shard.documentStart(range.lowerBound)
            try shard.documentEnds(range, into: &groupEnds)
        }
        firstDocument = range.lowerBound
        documentCount = range.count
        keys.removeAll(keepingCapacity: true)
        itemBin.removeAll(keepingCapacity: true)
        fullRows = 0
        var start = groupStart
        for d in range {
            let end = groupEnds[d - range.lowerBound]
            let length = end - start
            start = end
            fullRows += Int(length / UInt64(R))
            let rest = Int(length % UInt64(R))
            if rest > 0 { keys.append(UInt64(R - rest) << 32 | UInt64(d - range.lowerBound)) }
            itemBin.append(-1)
        }
        keys.sort()
        binRoom.removeAll(keepingCapacity: true)
        binLink.removeAll(keepingCapacity: true)
        for key in keys {
            let length = R - Int(key >> 32)
            let item = Int(key & 0xFFFF_FFFF)
            let bin: Int
            if let room = firstRoom(atLeast: length) {
                bin = Int(roomHead[room])
                popRoom(room)
                binRoom[bin] -= Int32(length)
            } else {
                bin = binRoom.count
                binRoom.append(Int32(R - length))
                binLink.append(-1)
            }
            if binRoom[bin] > 0 { pushRoom(bin) }
            itemBin[item] = Int32(bin)
        }
        binCount = binRoom.count
        // Leave the room stacks empty for the next group: O(rows), not O(R).
        for bin in 0 ..< binCount where binRoom[bin] > 0 {
            let room = Int(binRoom[bin])
            roomHead[room] = -1
            roomBits[room >> 6] &= ~(1 << UInt64(room & 63))
        }
        rowCount = fullRows + binCount
        return rowCount
    }

    /// Rows a whole shard packs into: its documents in groups of `lookahead`, each packed on its own.
    /// - Throws: `ShardError` when an index page cannot be read or is corrupt.
    mutating func countRows(_ shard: ShardReader, lookahead: Int) throws(ShardError) -> UInt64 {
        var none: [UInt64] = []
        return try countRows(shard, lookahead: lookahead, checkpointEvery: .max, into: &none)
    }

    /// Rows a whole shard packs into, as ``countRows(_:lookahead:)``, and its checkpoints: replaces
    /// `checkpoints` with the rows before group `j · groupsPerCheckpoint`, for `j = 1, 2, …` while that
    /// group exists (``BestFitCheckpoints``).
    /// - Throws: `ShardError` when an index page cannot be read or is corrupt.
    mutating func countRows(_ shard: ShardReader, lookahead: Int, checkpointEvery groupsPerCheckpoint: Int,
                            into checkpoints: inout [UInt64]) throws(ShardError) -> UInt64 {
        checkpoints.removeAll(keepingCapacity: true)
        var rows: UInt64 = 0
        var first = 0
        var group = 0
        let count = shard.metadata.documentCount
        while first < count {
            if group > 0 && group % groupsPerCheckpoint == 0 { checkpoints.append(rows) }
            let end = min(count, first + lookahead)
            rows += UInt64(try pack(shard, documents: first ..< end))
            first = end
            group += 1
        }
        return rows
    }

    /// Lays out the rows of the last packed group (``pieces``, ``rowStarts``, ``rowFill``).
    mutating func materialize() {
        let R = UInt64(rowTokens)
        // Item rows' members in stream order: counting sort of documents by row.
        binFirst.removeAll(keepingCapacity: true)
        binMemberStart.removeAll(keepingCapacity: true)
        for _ in 0 ..< binCount { binFirst.append(-1); binMemberStart.append(0) }
        binMemberStart.append(0)
        for i in 0 ..< documentCount where itemBin[i] >= 0 {
            let b = Int(itemBin[i])
            binMemberStart[b + 1] += 1
            if binFirst[b] < 0 { binFirst[b] = Int32(i) }
        }
        for b in 0 ..< binCount { binMemberStart[b + 1] += binMemberStart[b] }
        binMembers.removeAll(keepingCapacity: true)
        for _ in 0 ..< Int(binMemberStart[binCount]) { binMembers.append(0) }
        binFillAt.removeAll(keepingCapacity: true)
        binFillAt.append(contentsOf: binMemberStart.prefix(binCount))
        for i in 0 ..< documentCount where itemBin[i] >= 0 {
            let b = Int(itemBin[i])
            binMembers[Int(binFillAt[b])] = Int32(i)
            binFillAt[b] += 1
        }
        // Every row, keyed by its first piece's stream position: (document in group, chunk index);
        // an item row's first piece is its first document's item, whose chunk index is ⌊len / R⌋.
        rowKeys.removeAll(keepingCapacity: true)
        for i in 0 ..< documentCount {
            let length = length(ofDocumentInGroup: i)
            let chunks = length / R
            for c in 0 ..< chunks { rowKeys.append(UInt64(i) << 32 | c) }
        }
        for b in 0 ..< binCount {
            let i = Int(binFirst[b])
            rowKeys.append(UInt64(i) << 32 | (length(ofDocumentInGroup: i) / R))
        }
        rowKeys.sort()
        pieces.removeAll(keepingCapacity: true)
        rowStarts.removeAll(keepingCapacity: true)
        rowFill.removeAll(keepingCapacity: true)
        for key in rowKeys {
            let i = Int(key >> 32)
            let chunk = key & 0xFFFF_FFFF
            let length = length(ofDocumentInGroup: i)
            rowStarts.append(pieces.count)
            if chunk < length / R {
                pieces.append(GroupPiece(document: firstDocument + i, offset: start(ofDocumentInGroup: i) + chunk * R,
                                         length: UInt32(R)))
                rowFill.append(Int(R))
            } else {
                let b = Int(itemBin[i])
                var fill = 0
                for m in Int(binMemberStart[b]) ..< Int(binMemberStart[b + 1]) {
                    let member = Int(binMembers[m])
                    let memberLength = self.length(ofDocumentInGroup: member)
                    let rest = memberLength % R
                    pieces.append(GroupPiece(document: firstDocument + member,
                                             offset: start(ofDocumentInGroup: member) + memberLength - rest,
                                             length: UInt32(rest)))
                    fill += Int(rest)
                }
                rowFill.append(fill)
            }
        }
        rowStarts.append(pieces.count)
        precondition(rowFill.count == rowCount, "bestfit: \(rowFill.count) rows laid out, \(rowCount) packed")
    }

    private func start(ofDocumentInGroup i: Int) -> UInt64 {
        i == 0 ? groupStart : groupEnds[i - 1]
    }

    private func length(ofDocumentInGroup i: Int) -> UInt64 {
        groupEnds[i] - start(ofDocumentInGroup: i)
    }

    /// The least room ≥ `length` that some open row has.
    private func firstRoom(atLeast length: Int) -> Int? {
        var word = length >> 6
        var bits = roomBits[word] & (~0 << UInt64(length & 63))
        while true {
            if bits != 0 { return word << 6 + bits.trailingZeroBitCount }
            word += 1
            if word == roomBits.count { return nil }
            bits = roomBits[word]
        }
    }

    private mutating func pushRoom(_ bin: Int) {
        let room = Int(binRoom[bin])
        binLink[bin] = roomHead[room]
        roomHead[room] = Int32(bin)
        roomBits[room >> 6] |= 1 << UInt64(room & 63)
    }

    private mutating func popRoom(_ room: Int) {
        let bin = Int(roomHead[room])
        roomHead[room] = binLink[bin]
        if roomHead[room] < 0 { roomBits[room >> 6] &= ~(1 << UInt64(room & 63)) }
    }
}
