#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import TokenfeedEngine
import TokenfeedProtocol
import TokenfeedSystem

/// Sends one session's batches: takes the next packed batch from the session's ring, writes the
/// frame header and metadata with `BatchHeaderWriter` into a buffer mapped once per session (sized for
/// the most pieces a batch can have, backed only as far as batches actually reach), and
/// sends [header + metadata, token block] with one `sendmsg` whose second part points straight into
/// the ring slot. No token is copied and nothing is allocated per batch.
final class BatchWriter {
    /// What ``sendNext(interrupt:)`` did.
    enum Outcome {
        /// The batch of this step went out, after waiting this long for the packer (0: it was ready).
        case sent(step: UInt64, waitedNanoseconds: UInt64)
        /// No batch was ready and `interrupt` said to stop waiting after this many nanoseconds.
        case waited(nanoseconds: UInt64)
        /// The socket failed; the session is over.
        case writeFailed(SystemCallError)
        /// The feed ended (end of the run, or a data error: see the feed's `failure`).
        case ended
    }

    let session: Session
    private let sender: SocketSender
    private let headerPages: AnonymousPages
    private let header: UnsafeMutableRawBufferPointer
    private let vectors: UnsafeMutableBufferPointer<iovec>
    private let sequenceLength: UInt32
    private let tokenWidth: TokenfeedProtocol.TokenWidth
    private let fingerprint: UInt64
    private let quarantineDigest: UInt64
    private let stepCount: UInt64
    private var expectedStep: UInt64

    /// - Parameter sender: the connection's socket (a full socket waits there, holding no Dispatch thread).
    init(session: Session, served: ServedStream, sender: SocketSender) {
        self.session = session
        self.sender = sender
        self.sequenceLength = served.sequenceLength
        self.tokenWidth = served.tokenWidth
        self.fingerprint = served.fingerprint
        self.quarantineDigest = served.quarantine.digest
        self.stepCount = session.feed.stepCount
        self.expectedStep = session.startStep
        let capacity = BatchLayout.maximumTokenOffset(batchSize: Int(session.batchSize), sequenceLength: Int(served.sequenceLength))
        // Zero-filled and page-aligned; untouched pages cost nothing (a worst-case-sized header buffer
        // at batch size 1,024 is 58 MB, of which a batch of long documents writes a few pages).
        headerPages = AnonymousPages(byteCount: capacity)
        header = UnsafeMutableRawBufferPointer(start: headerPages.base, count: capacity)
        vectors = .allocate(capacity: 2)
        vectors.initialize(repeating: iovec())
    }

    /// Whether every step of the session has been sent (no batch is left to wait for).
    var isAtEnd: Bool { expectedStep >= stepCount }

    deinit {
        headerPages.deallocate()
        vectors.deallocate()
    }

    /// Sends the next batch, waiting while the packer has none ready: a short spin, then parked on the
    /// ring's ``BatchRing/consumerEvents`` (no CPU, no wake-up until the packer publishes, the feed
    /// ends, or the caller notifies it after making `interrupt` true).
    /// - Parameter interrupt: checked while waiting; true returns `.waited` so the caller can send
    ///   control frames or tear down, then call again. Whoever makes it true must then call
    ///   `session.ring.consumerEvents.notify()`, or the writer sleeps on.
    func sendNext(interrupt: () -> Bool) -> Outcome {
        let ring = session.ring
        let feed = session.feed
        var waitStart: UInt64 = 0
        while true {
            if let slot = ring.tryAcquireFull() {
                let result = send(PackedBatch(layout: feed.layout, bytes: slot.payload))
                ring.release(slot)
                switch result {
                case .success(let step):
                    return .sent(step: step, waitedNanoseconds: waitStart == 0 ? 0 : monotonicNanoseconds() - waitStart)
                case .failure(let error): return .writeFailed(error)
                }
            }
            if waitStart == 0 { waitStart = monotonicNanoseconds() }
            if interrupt() { return .waited(nanoseconds: monotonicNanoseconds() - waitStart) }
            if expectedStep >= stepCount { return .ended }
            if ring.isClosed && feed.isFinished {
                // What the packer published before closing is visible now (BatchRing, invariant 5).
                if ring.hasPublishedSlot { continue }
                return .ended
            }
            ring.consumerEvents.wait(until: { ring.hasPublishedSlot || interrupt() || (ring.isClosed && feed.isFinished) })
        }
    }

    private func send(_ batch: PackedBatch) -> Result<UInt64, SystemCallError> {
        let step = batch.step
        precondition(step == expectedStep, "the feed produced step \(step), expected \(expectedStep)")
        let pieces = batch.pieces
        var paddedRows = 0
        for record in batch.records where record.paddedTokens > 0 { paddedRows += 1 }
        var writer = BatchHeaderWriter(into: header, step: step, rank: session.rank, worldSize: session.worldSize,
                                       batchSize: session.batchSize, sequenceLength: sequenceLength, tokenWidth: tokenWidth,
                                       pieceCount: pieces.count + paddedRows, fingerprint: fingerprint,
                                       quarantineDigest: quarantineDigest)
        let records = batch.records
        for j in 0 ..< records.count {
            let record = records[j]
            writer.appendRow(datasetIndex: record.dataset, stageIndex: record.stage, epoch: record.epoch,
                             pieces: RowPieces(data: batch.pieces(of: j), paddedTokens: record.paddedTokens))
        }
        let headerBytes = writer.finish()
        let tokens = batch.tokens
        vectors[0] = iovec(iov_base: header.baseAddress, iov_len: headerBytes)
        vectors[1] = iovec(iov_base: UnsafeMutableRawPointer(mutating: tokens.baseAddress), iov_len: tokens.count)
        switch sender.sendAll(vectors: vectors) {
        case .success:
            expectedStep = step + 1
            return .success(step)
        case .failure(let error):
            return .failure(error)
        }
    }
}

/// A row's pieces on the wire: its data pieces, then one padding piece when the row ends in padding
/// (bestfit packing), so that cu_seqlens ends at `sequence_length + 1`. A view: nothing is allocated.
struct RowPieces: RandomAccessCollection {
    let data: UnsafeBufferPointer<SequencePiece>
    let paddedTokens: UInt32

    var startIndex: Int { 0 }
    var endIndex: Int { data.count + (paddedTokens > 0 ? 1 : 0) }

    subscript(index: Int) -> Piece {
        guard index < data.count else { return .padding(length: paddedTokens) }
        let p = data[index]
        return Piece(shardIndex: p.shard, documentIndex: p.document, tokenOffset: p.offset, length: p.length)
    }
}
