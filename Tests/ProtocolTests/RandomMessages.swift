import TokenfeedMixing
import TokenfeedProtocol

/// Random valid messages for property tests.
enum RandomMessages {
    static func cursor(_ rng: inout SplitMix64, fingerprint: UInt64? = nil) -> Cursor {
        Cursor(fingerprint: fingerprint ?? rng.next(), nextStep: UInt64.random(in: 0...1 << 40, using: &rng),
               worldSize: UInt32.random(in: 1...1024, using: &rng), batchSize: UInt32.random(in: 1...256, using: &rng),
               quarantineDigest: Bool.random(using: &rng) ? 0 : rng.next())
    }

    static func stages(_ rng: inout SplitMix64) -> [StageInfo] {
        let count = Int.random(in: 1...4, using: &rng)
        var start: UInt64 = 0
        var stages: [StageInfo] = []
        for i in 0..<count {
            let openEnded = i == count - 1 && Bool.random(using: &rng)
            let end = openEnded ? UInt64.max : start + UInt64.random(in: 1...1 << 40, using: &rng)
            stages.append(StageInfo(name: randomString(&rng, maxBytes: StageInfo.maxNameBytes), startToken: start, endToken: end))
            start = end
        }
        return stages
    }

    static func hello(_ rng: inout SplitMix64) -> Hello {
        let world = UInt32.random(in: 1...4096, using: &rng)
        return Hello(rank: UInt32.random(in: 0..<world, using: &rng), worldSize: world,
                     batchSize: UInt32.random(in: 1...1024, using: &rng), initialCredits: UInt32.random(in: 0...64, using: &rng),
                     cursor: Bool.random(using: &rng) ? cursor(&rng) : nil,
                     jobID: randomString(&rng, maxBytes: Hello.maxJobIDBytes),
                     authToken: randomString(&rng, maxBytes: Hello.maxAuthTokenBytes))
    }

    static func welcome(_ rng: inout SplitMix64) -> Welcome {
        let fp = rng.next()
        let width: TokenWidth = Bool.random(using: &rng) ? .u16 : .u32
        return Welcome(
            sequenceLength: UInt32.random(in: 1...8192, using: &rng), tokenWidth: width,
            vocabularySize: width == .u16 ? UInt32.random(in: 1...65_536, using: &rng) : UInt32.random(in: 1...200_000, using: &rng),
            fingerprint: fp, startCursor: cursor(&rng, fingerprint: fp), stages: stages(&rng),
            datasets: (0..<Int.random(in: 1...5, using: &rng)).map { _ in
                DatasetInfo(name: randomString(&rng, maxBytes: 64),
                            shardPaths: (0..<Int.random(in: 0...4, using: &rng)).map { _ in randomString(&rng, maxBytes: 64) })
            })
    }

    static func rows(_ rng: inout SplitMix64, batchSize: Int, sequenceLength: Int, datasets: UInt32 = 8,
                     stages: UInt32 = 3, shards: UInt32 = 5) -> [Batch.Row] {
        (0..<batchSize).map { _ in
            var remaining = sequenceLength + 1
            var pieces: [Piece] = []
            let padding = Bool.random(using: &rng) ? Int.random(in: 0...min(3, remaining - 1), using: &rng) : 0
            remaining -= padding
            while remaining > 0 {
                let n = Int.random(in: 1...remaining, using: &rng)
                pieces.append(Piece(shardIndex: UInt32.random(in: 0..<shards, using: &rng),
                                    documentIndex: UInt64.random(in: 0...1 << 40, using: &rng),
                                    tokenOffset: UInt64.random(in: 0...1 << 50, using: &rng), length: UInt32(n)))
                remaining -= n
            }
            if padding > 0 { pieces.append(.padding(length: UInt32(padding))) }
            return Batch.Row(datasetIndex: UInt32.random(in: 0..<datasets, using: &rng),
                             stageIndex: UInt32.random(in: 0..<stages, using: &rng),
                             epoch: UInt32.random(in: 0...3, using: &rng), pieces: pieces)
        }
    }

    static func batch(_ rng: inout SplitMix64) -> Batch {
        let world = UInt32.random(in: 1...8, using: &rng)
        let b = Int.random(in: 1...4, using: &rng)
        let l = Int.random(in: 1...24, using: &rng)
        let width: TokenWidth = Bool.random(using: &rng) ? .u16 : .u32
        let maxToken: UInt32 = width == .u16 ? 0xFFFF : .max
        return Batch(step: UInt64.random(in: 0...1 << 30, using: &rng), rank: UInt32.random(in: 0..<world, using: &rng),
                     worldSize: world, sequenceLength: UInt32(l), tokenWidth: width, fingerprint: rng.next(),
                     quarantineDigest: Bool.random(using: &rng) ? 0 : rng.next(),
                     rows: rows(&rng, batchSize: b, sequenceLength: l),
                     tokens: (0..<(b * (l + 1))).map { _ in UInt32.random(in: 0...maxToken, using: &rng) })
    }

    static func stats(_ rng: inout SplitMix64) -> Stats {
        let stages = stages(&rng)
        return Stats(
            currentStage: UInt32.random(in: 0..<UInt32(stages.count), using: &rng), sequenceLength: 4096,
            positionSequence: rng.next(), tokensServed: rng.next(), batchesServed: rng.next(),
            ringCapacity: UInt32.random(in: 1...64, using: &rng), ringOccupied: UInt32.random(in: 0...64, using: &rng),
            preloadBytes: rng.next(), preloadBudgetBytes: rng.next(), uptimeMilliseconds: rng.next(), stages: stages,
            datasets: (0..<Int.random(in: 0...5, using: &rng)).map { _ in
                Stats.Dataset(name: randomString(&rng, maxBytes: 64), targetShare: Double.random(in: 0...1, using: &rng),
                              realizedShare: Double.random(in: 0...1, using: &rng), tokensServed: rng.next(),
                              epoch: UInt32.random(in: 0...9, using: &rng), quarantinedShards: UInt32.random(in: 0...3, using: &rng))
            },
            clients: (0..<Int.random(in: 0...5, using: &rng)).map { _ in
                Stats.Client(rank: UInt32.random(in: 0...7, using: &rng), worldSize: 8, batchSize: 4,
                             credits: UInt32.random(in: 0...8, using: &rng), nextStep: rng.next(), batchesSent: rng.next(),
                             waitNanosecondsTotal: rng.next(), waitNanosecondsMax: rng.next(),
                             jobID: randomString(&rng, maxBytes: 64))
            },
            prometheusText: Bool.random(using: &rng) ? randomString(&rng, maxBytes: 300) : nil)
    }

    static func message(_ rng: inout SplitMix64) -> Message {
        switch Int.random(in: 0..<8, using: &rng) {
        case 0: .hello(hello(&rng))
        case 1: .welcome(welcome(&rng))
        case 2: .credit(Credit(count: UInt32.random(in: 1...UInt32.max, using: &rng)))
        case 3: .batch(batch(&rng))
        case 4: .statsRequest(StatsRequest(prometheus: Bool.random(using: &rng)))
        case 5: .stats(stats(&rng))
        case 6: .error(ErrorMessage(code: ErrorCode(rawValue: UInt16.random(in: 1...20, using: &rng)),
                                    message: randomString(&rng, maxBytes: 200), detail: randomString(&rng, maxBytes: 50)))
        default: .goodbye(Goodbye(reason: Bool.random(using: &rng) ? .done : .endOfStream))
        }
    }
}
