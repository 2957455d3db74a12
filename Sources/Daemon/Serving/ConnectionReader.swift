#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Dispatch
import TokenfeedProtocol

/// Reads one connection's requests: a `DispatchSourceRead` on the connection's serial queue whose
/// handler `recv`s into a ``FrameDecoder`` and hands each decoded message, decoding error, end of
/// stream or read error to `deliver` (the connection feeds them to its ``ConnectionStateMachine``).
///
/// Confined to `queue` (asserted in debug builds; hence `@unchecked Sendable`). `deliver` returns whether to keep reading: false
/// when the connection is closing or has paused reading; nothing more is delivered until
/// ``resume()``. ``cancel()`` ends reading; `cancelled` then runs once on `queue`.
final class ConnectionReader: @unchecked Sendable {
    /// What the reader found.
    enum Event {
        /// A decoded request.
        case message(Message, requestID: UInt32)
        /// A frame or the byte stream could not be decoded; `answers`: the request id of a Hello or a
        /// StatsRequest whose payload failed (its refusal carries it), nil otherwise.
        case undecodable(ProtocolError, answers: UInt32?)
        /// The client closed its end with this many bytes of an unfinished frame buffered.
        case ended(partialFrameBytes: Int)
        /// `recv` failed.
        case failed(SystemCallError)
    }

    private let fd: Int32
    private let queue: DispatchQueue
    private let decoder: FrameDecoder
    private let source: any DispatchSourceRead
    /// Dropped at ``cancel()``: it refers to the connection, which owns this reader.
    private var deliver: ((Event) -> Bool)?
    private var paused = false
    private var cancelled = false

    /// - Parameters:
    ///   - fd: the connection's non-blocking socket.
    ///   - queue: the connection's serial queue, where every call and `deliver` run.
    ///   - deliver: takes each event; returns whether to keep reading.
    ///   - cancelled: runs on `queue` once the read source is cancelled (the reader is done with `fd`).
    init(fd: Int32, queue: DispatchQueue, deliver: @escaping (Event) -> Bool, cancelled: @escaping () -> Void) {
        self.fd = fd
        self.queue = queue
        self.deliver = deliver
        var limits = FrameLimits()
        // A client never sends Welcome, Batch, Stats or Error: refuse them at the header (docs/PROTOCOL.md section 3).
        limits.refusedTypes = [.welcome, .batch, .stats, .error]
        decoder = FrameDecoder(limits: limits, initialCapacity: 4096)
        source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        source.setCancelHandler(handler: cancelled)
    }

    /// Starts reading.
    func start() {
        dispatchPrecondition(condition: .onQueue(queue))
        // The source holds the handler (and so this reader) until it is cancelled.
        source.setEventHandler { [self] in readable() }
        source.resume()
    }

    /// Stops delivering events until ``resume()`` (the source is suspended).
    func pause() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !paused, !cancelled else { return }
        paused = true
        source.suspend()
    }

    /// Reads again after ``pause()``.
    func resume() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard paused, !cancelled else { return }
        paused = false
        source.resume()
    }

    /// Stops reading for good (idempotent); the `cancelled` handler follows on `queue`.
    func cancel() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !cancelled else { return }
        cancelled = true
        deliver = nil
        source.cancel()
        if paused {
            // A suspended source runs its cancel handler only once resumed.
            paused = false
            source.resume()
        }
    }

    /// Reads what the socket holds and delivers every complete frame, until the socket is drained
    /// (EAGAIN), the client has closed, or `deliver` says stop.
    private func readable() {
        dispatchPrecondition(condition: .onQueue(queue))
        guard !paused, let deliver else { return }
        while true {
            var readErrno: Int32 = 0
            let n: Int
            do {
                n = try decoder.receive { buffer in
                    let got = recv(fd, buffer.baseAddress, buffer.count, 0)
                    if got < 0 { readErrno = errno }
                    return got
                }
            } catch {
                _ = deliver(.undecodable(error, answers: nil))
                return
            }
            if n == 0 {
                _ = deliver(.ended(partialFrameBytes: decoder.bufferedBytes))
                return
            }
            if n < 0 {
                if readErrno == EAGAIN || readErrno == EWOULDBLOCK { return }
                if readErrno == EINTR { continue }
                _ = deliver(.failed(SystemCallError("recv", code: readErrno)))
                return
            }
            do {
                while let frame = try decoder.nextFrame() {
                    let event: Event
                    do { event = .message(try frame.message(), requestID: frame.header.requestID) } catch {
                        // An answer to a Hello or StatsRequest carries its request id, refusals included.
                        let answers = frame.header.type == .hello || frame.header.type == .statsRequest
                        event = .undecodable(error, answers: answers ? frame.header.requestID : nil)
                    }
                    guard deliver(event), !paused, self.deliver != nil else { return }
                }
            } catch {
                _ = deliver(.undecodable(error, answers: nil))
                return
            }
        }
    }
}
