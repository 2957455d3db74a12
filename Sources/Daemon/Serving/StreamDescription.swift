import TokenfeedCurriculum
import TokenfeedEngine
import TokenfeedMixing

/// Everything that decides a stream's sequences, as canonical text lines in stream order — what
/// ``StreamFingerprint`` hashes, and what tells whether a cursor made under one curriculum resumes
/// exactly under another.
///
/// The text (UTF-8, one `\n` after each line):
/// ```
/// tokenfeed-stream-v2
/// sequence_length=<L>
/// seed=<seed>
/// packing=concat | packing=bestfit,<pad>,<lookahead>
/// shuffle=rows,<span>                                (only when rows are shuffled)
/// order=nanotron                                      (only under --order nanotron)
/// quarantine=<digest, 16 hex digits>                 (only when shards were quarantined)
/// stage=<start token>;<dataset identity>=<units>;…   (one block per stage, in order; under --order nanotron
///                                                     each weight is <units>@<weight as written, float64>)
/// dataset=<identity>                                  (each dataset the first stage that draws from it)
/// shard=<path relative to the data root>:<tokens>:<documents>   (its shards, in file-name order;
///                                                     <identity>/<file name> outside the data root)
/// ```
/// Datasets are named by identity (``DatasetSpec/identity``: a nanotron `dataset_folder`), which
/// is the same in every stage file, not by display name, which need not be.
///
/// Stage `k`'s block holds its start, its mixture (weight units in the file's order) and the
/// datasets it draws from first. Sequences of stages `0..<k` depend only on the header and the first
/// `k` blocks — never on later stages, nor on where stage `k − 1` ends (the next block's start says
/// that) — so the hash of the header and the first `k` blocks, ``prefixFingerprint(stages:)``, is
/// the fingerprint of the same curriculum cut after stage `k − 1`: the fingerprint a cursor made
/// under that shorter curriculum carries. The whole description's hash is ``fingerprint``.
public struct StreamDescription: Sendable, Equatable {
    /// One line and what it says, for naming a difference.
    public struct Line: Sendable, Equatable {
        public var text: String
        /// Where the line belongs, for people: "sequence_length", "stage 2 ('decay')", "dataset 'dclm'
        /// (first drawn in stage 1 ('stable'))".
        public var place: String
    }

    /// The header lines (sequence length, seed, packing, quarantine).
    public private(set) var header: [Line]
    /// One block per stage.
    public private(set) var stages: [[Line]]
    /// The stages' names, for messages.
    public private(set) var stageNames: [String]
    private var prefixFingerprints: [UInt64] = []

    public static let magic = "tokenfeed-stream-v2"

    /// The description of `stream` served with `quarantine` left out.
    public init(stream: GlobalStream, quarantine: ShardQuarantine = .none) {
        let c = stream.curriculum
        var header = [Line(text: Self.magic, place: "format"),
                      Line(text: "sequence_length=\(c.sequenceLength)", place: "sequence_length"),
                      Line(text: "seed=\(c.seed)", place: "seed")]
        switch c.packing {
        case .concat: header.append(Line(text: "packing=concat", place: "packing"))
        case .bestfit(let pad, let lookahead): header.append(Line(text: "packing=bestfit,\(pad),\(lookahead)", place: "packing"))
        }
        if case .rows(let span) = c.shuffle { header.append(Line(text: "shuffle=rows,\(span)", place: "shuffle")) }
        if c.order != .quota { header.append(Line(text: "order=\(c.order.rawValue)", place: "order")) }
        if !quarantine.isEmpty { header.append(Line(text: "quarantine=\(hex16(quarantine.digest))", place: "quarantined shards")) }
        self.header = header
        var described = Set<Int>()
        stages = c.stages.enumerated().map { s, stage in
            let place = "stage \(s + 1) ('\(stage.name)')"
            var text = "stage=\(stage.startToken)"
            for weight in stage.weights {
                text += ";\(c.datasets[weight.dataset].identity)=\(weight.units)"
                // nanotron's blend computes with the weights as written (float64), not their ratios.
                if c.order == .nanotron { text += "@\(weight.written)" }
            }
            var block = [Line(text: text, place: "\(place) start and mixture")]
            for weight in stage.weights where described.insert(weight.dataset).inserted {
                let d = weight.dataset, spec = c.datasets[d]
                let datasetPlace = "dataset '\(spec.name)' (first drawn in \(place))"
                block.append(Line(text: "dataset=\(spec.identity)", place: datasetPlace))
                let prefix = GlobalStream.provenancePrefix(folder: stream.datasets[d].path, datasetName: spec.identity, dataRoot: c.dataRoot)
                for (k, shard) in stream.datasets[d].shards.enumerated() {
                    let path = prefix + "/" + shard.fileName
                    block.append(Line(text: "shard=\(path):\(shard.metadata.tokenCount):\(shard.metadata.documentCount)",
                                      place: "\(datasetPlace), shard \(k)"))
                }
            }
            return block
        }
        stageNames = c.stages.map(\.name)
        prefixFingerprints = Self.prefixHashes(header: header, stages: stages)
    }

    /// Reads a description back from ``text`` (a record a daemon wrote); nil if it is not one.
    public init?(text: String) {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        guard lines.first == Self.magic else { return nil }
        var header: [Line] = []
        while let line = lines.first, !line.hasPrefix("stage=") {
            header.append(Line(text: line, place: String(line.prefix { $0 != "=" })))
            lines.removeFirst()
        }
        var stages: [[Line]] = []
        for line in lines {
            if line.hasPrefix("stage=") {
                stages.append([Line(text: line, place: "stage \(stages.count + 1) start and mixture")])
            } else if !stages.isEmpty {
                stages[stages.count - 1].append(Line(text: line, place: "stage \(stages.count)"))
            } else {
                return nil
            }
        }
        self.header = header
        self.stages = stages
        stageNames = stages.indices.map { "stage \($0 + 1)" }
        prefixFingerprints = Self.prefixHashes(header: header, stages: stages)
    }

    /// The canonical text: every line followed by `\n`.
    public var text: String {
        var out = ""
        for line in header + stages.joined() { out += line.text + "\n" }
        return out
    }

    /// The stream's fingerprint: the hash of the whole description.
    public var fingerprint: UInt64 { prefixFingerprint(stages: stages.count) }

    /// The hash of the header and the first `count` stage blocks: the fingerprint of this curriculum
    /// cut after its first `count` stages (`0 ≤ count ≤ stages.count`).
    public func prefixFingerprint(stages count: Int) -> UInt64 { prefixFingerprints[count] }

    /// The number of leading stages whose prefix fingerprint is `fingerprint` (the most, if several),
    /// or nil if none.
    public func stagesSharing(fingerprint: UInt64) -> Int? {
        for count in stride(from: stages.count, through: 1, by: -1) where prefixFingerprints[count] == fingerprint {
            return count
        }
        return nil
    }

    /// `prefixFingerprints[k]`: the FNV-1a hash of the header and the first `k` stage blocks, computed
    /// in one pass (FNV-1a is a running hash).
    private static func prefixHashes(header: [Line], stages: [[Line]]) -> [UInt64] {
        var hasher = StableHash.FNV1a64()
        func add(_ lines: [Line]) {
            for line in lines { hasher.add(line.text.utf8); hasher.add(CollectionOfOne(0x0a)) }
        }
        add(header)
        var out = [hasher.value]
        for block in stages { add(block); out.append(hasher.value) }
        return out
    }

    /// The first line where `self` (the stream a cursor was made for) and `other` differ, said for
    /// people; nil when `self` is a prefix of `other` stage by stage.
    public func firstDifference(to other: StreamDescription) -> String? {
        for (mine, theirs) in zip(header, other.header) where mine.text != theirs.text {
            return "\(theirs.place): the cursor's stream has \(mine.text), this one \(theirs.text)"
        }
        if header.count != other.header.count {
            let extra = header.count > other.header.count ? header[other.header.count] : other.header[header.count]
            return "\(extra.place): only one of the streams has \(extra.text)"
        }
        for s in stages.indices {
            guard s < other.stages.count else {
                return "the cursor's stream has \(stages.count) stages, this one \(other.stages.count)"
            }
            let mine = stages[s], theirs = other.stages[s]
            for (a, b) in zip(mine, theirs) where a.text != b.text {
                return "\(b.place): the cursor's stream has \(a.text), this one \(b.text)"
            }
            if mine.count != theirs.count {
                let (longer, who) = mine.count > theirs.count ? (mine, "the cursor's stream") : (theirs, "this stream")
                let extra = longer[min(mine.count, theirs.count)]
                return "\(extra.place): only \(who) has \(extra.text)"
            }
        }
        return nil
    }
}
