"""The tokenfeed client: one rank's session with the daemon over its Unix socket.

    from tokenfeed import Client

    with Client("/run/tokenfeed.sock", rank=0, world_size=8, batch_size=4) as client:
        for batch in client:
            x = torch.from_numpy(batch.inputs.astype(np.int64))   # (B, L)
            y = torch.from_numpy(batch.labels.astype(np.int64))
            ...
            save(batch.cursor)                                     # resume point after this batch

Batches are received with ``socket.recv_into`` into 64-byte aligned buffers and exposed in place
(no copy). A buffer is reused only when nothing refers to it any more — no Batch, array or tensor
made from it without a copy — so a batch kept for any time never changes under its holder. Keeping
many batches keeps their buffers (``batch.copy()`` keeps just the one frame).

Flow control: the Hello grants ``credits`` batches; each time the next batch is requested, the
previous one is taken as finished and one Credit is sent back, so about ``credits`` batches are
always in flight and no batch costs a round trip.
"""

from __future__ import annotations

import socket
from typing import Iterator

import numpy as np

from . import protocol as P
from .batch import Batch, Session
from .buffers import BufferPool
from .errors import (
    ConnectionClosedError,
    MalformedFrameError,
    OversizeFrameError,
    ProtocolTimeoutError,
    TokenfeedError,
    UnexpectedMessageError,
)
from .protocol import Cursor, Welcome

_HELLO_REQUEST_ID = 1


class _Connection:
    """A socket with exact reads into caller buffers and typed errors."""

    def __init__(self, path: str, timeout: float | None):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except socket.timeout:
            self.sock.close()
            raise ProtocolTimeoutError(f"connecting to {path} timed out") from None
        except OSError as e:
            self.sock.close()
            raise ConnectionClosedError(f"cannot connect to {path}: {e.strerror or e}") from None

    def send(self, data: bytes, answer_follows: bool = False) -> None:
        """Sends ``data``. With ``answer_follows`` (a connection's first frame) a failed write is left
        to the read of the answer: a daemon that refuses the connection (``auth_failed``) sends its
        Error and closes before reading, so the write fails but the Error is still there to read."""
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise ProtocolTimeoutError(f"sending to {self.path} timed out") from None
        except OSError as e:
            if answer_follows:
                return
            raise ConnectionClosedError(f"the daemon at {self.path} closed the connection ({e.strerror or e})") from None

    def recv_exact(self, view: memoryview, what: str) -> None:
        """Fills ``view`` completely.

        Raises:
            ConnectionClosedError: the daemon closed the connection before ``view`` was full.
            ProtocolTimeoutError: no byte arrived within the timeout.
        """
        got, n = 0, len(view)
        while got < n:
            try:
                k = self.sock.recv_into(view[got:], n - got)
            except socket.timeout:
                raise ProtocolTimeoutError(f"no data from {self.path} within the timeout ({what}, {got} of {n} bytes)") from None
            except OSError as e:
                raise ConnectionClosedError(f"reading {what} from {self.path}: {e.strerror or e}") from None
            if k == 0:
                where = "between frames" if what == "frame header" and got == 0 else f"in the middle of {what} ({got} of {n} bytes)"
                raise ConnectionClosedError(f"the daemon closed the connection {where}")
            got += k

    def recv_header(self, buf: np.ndarray | bytearray) -> P.FrameHeader:
        view = memoryview(buf)[:P.HEADER_SIZE]
        self.recv_exact(view, "frame header")
        return P.decode_header(view)

    def recv_payload(self, header: P.FrameHeader) -> bytearray:
        payload = bytearray(header.payload_length)
        self.recv_exact(memoryview(payload), P.MESSAGE_NAMES[header.type] + " payload")
        return payload

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _raise_for_frame(conn: _Connection, header: P.FrameHeader, expecting: str) -> None:
    """Handles a frame that is not the one expected: raises the daemon's Error, or unexpected_message."""
    if header.type == P.ERROR:
        raise P.ErrorMessage.decode(conn.recv_payload(header)).to_exception()
    raise UnexpectedMessageError(f"received {P.MESSAGE_NAMES[header.type]} while expecting {expecting}",
                                 P.MESSAGE_NAMES[header.type])


class Client:
    """One rank's training session (see the module documentation for usage and buffer lifetime).

    Args:
        socket_path: the daemon's Unix socket.
        rank, world_size, batch_size: this client's global rank, the job's rank count, and the
            sequences per batch for this rank.
        cursor: resume from this cursor (a :class:`Cursor`, its 56 bytes or its ``tfc1-`` text); ``None``
            starts at the beginning of the stream.
        credits: batches kept in flight (≥ 1). Received batches never change while referenced,
            however many more are fetched (see the module's docstring).
        job_id, auth_token: as in the Hello (section 6.1).
        replicas, replica_index: for the tensor/pipeline-parallel replicas of one data-parallel rank
            (``rank`` is the data-parallel rank): every replica connects with the same rank, shape,
            cursor and ``replicas``, and its own ``replica_index``; each receives every batch. When one
            leaves early the others get :class:`~tokenfeed.errors.ReplicaLostError` (section 4.1).
        timeout: seconds to wait for any read or write (``None`` waits for ever).

    Raises:
        A :class:`~tokenfeed.errors.TokenfeedError` subclass: the daemon's Error (``JobMismatchError``,
        ``RankInUseError``, ``BadCursorError``, …), a malformed Welcome, the connection closing, a timeout.
    """

    def __init__(self, socket_path: str, rank: int, world_size: int, batch_size: int, cursor=None,
                 credits: int = 4, *, job_id: str = "", auth_token: str = "", timeout: float | None = None,
                 replicas: int = 1, replica_index: int = 0):
        if credits < 1:
            raise ValueError("credits must be at least 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..<{world_size}")
        if not 0 <= replica_index < replicas <= 0xFFFF:
            raise ValueError(f"replica_index {replica_index} is not in 0..<replicas ({replicas})")
        if not 1 <= batch_size <= P.MAX_BATCH_SIZE:
            raise ValueError(f"batch_size {batch_size} is not in 1...{P.MAX_BATCH_SIZE}")
        self.rank, self.world_size, self.batch_size, self.credits = rank, world_size, batch_size, credits
        start = None if cursor is None else Cursor.parse(cursor)
        self._conn: _Connection | None = _Connection(socket_path, timeout)
        try:
            self.welcome = self._handshake(P.Hello(rank, world_size, batch_size, credits, start, job_id, auth_token,
                                                     replicas, replica_index))
        except BaseException:
            self.close(send_goodbye=False)
            raise
        self._session = Session(self.welcome, rank, world_size, batch_size)
        self._cursor = self.welcome.start_cursor
        self._next_step = self._cursor.next_step
        self._ended = False
        self._owes_credit = False
        L, w = self.welcome.sequence_length, self.welcome.token_width
        # Start with room for a few pieces per row; a buffer grows (rarely) when a frame needs more.
        # A buffer a live batch (or an array or tensor made from it) still refers to is never reused.
        self._buffers = BufferPool(keep=credits + 1, initial_size=min(
            self._session.max_frame_size, P.batch_frame_size(batch_size, L, w, batch_size * 8)))

    def _handshake(self, hello: P.Hello) -> Welcome:
        conn = self._conn
        assert conn is not None
        conn.send(hello.encode(_HELLO_REQUEST_ID), answer_follows=True)
        head = bytearray(P.HEADER_SIZE)
        header = conn.recv_header(head)
        if header.type != P.WELCOME:
            _raise_for_frame(conn, header, "Welcome")
        if header.request_id != _HELLO_REQUEST_ID:
            raise MalformedFrameError(f"frame offset 12: Welcome request_id {header.request_id} does not answer the Hello's {_HELLO_REQUEST_ID}", "request_id")
        welcome = Welcome.decode(conn.recv_payload(header))
        c = welcome.start_cursor
        if (c.world_size, c.batch_size) != (hello.world_size, hello.batch_size):
            raise MalformedFrameError(f"Welcome.start_cursor is for world_size {c.world_size} × batch_size {c.batch_size}, "
                                      f"the Hello declared {hello.world_size} × {hello.batch_size}", "Welcome.start_cursor")
        if hello.cursor is not None and c.next_sequence != hello.cursor.next_sequence:
            raise MalformedFrameError(f"Welcome.start_cursor starts at sequence {c.next_sequence}, the Hello's cursor at "
                                      f"{hello.cursor.next_sequence}", "Welcome.start_cursor")
        return welcome

    # -- session facts -----------------------------------------------------------------------------

    @property
    def sequence_length(self) -> int:
        return self.welcome.sequence_length

    @property
    def dtype(self) -> np.dtype:
        """The token dtype: ``uint16`` or ``uint32``."""
        return np.dtype(np.uint16 if self.welcome.token_width == 2 else np.uint32)

    @property
    def cursor(self) -> Cursor:
        """Where this session continues: the last batch's ``cursor_after``, or the start cursor."""
        return self._cursor

    @property
    def next_step(self) -> int:
        return self._next_step

    # -- batches -----------------------------------------------------------------------------------

    def next(self) -> Batch | None:
        """The next batch, or ``None`` when the daemon sent the curriculum's last step (end_of_stream).

        Takes the previously returned batch as finished (one Credit goes back to the daemon).

        Raises:
            A :class:`~tokenfeed.errors.TokenfeedError` (the daemon's Error, e.g. ``ShuttingDownError``
            or ``DataError``; a malformed frame; the connection closing; a timeout). The connection is
            closed after any error.
        """
        if self._ended:
            return None
        conn = self._conn
        if conn is None:
            raise ConnectionClosedError("the client is closed")
        try:
            if self._owes_credit:
                self._owes_credit = False
                try:
                    conn.send(P.encode_credit(1))
                except ConnectionClosedError:
                    # The daemon may have closed after its last frames (Goodbye, Error): they are
                    # still readable, and reading says what happened.
                    pass
            return self._receive_batch(conn)
        except BaseException:
            self.close(send_goodbye=False)
            raise

    def _receive_batch(self, conn: _Connection) -> Batch | None:
        buf = self._buffers.acquire()
        header = conn.recv_header(buf)
        if header.type == P.GOODBYE:
            reason = P.decode_goodbye(conn.recv_payload(header))
            self._ended = True
            self.close(send_goodbye=False)
            if reason != P.GOODBYE_END_OF_STREAM:
                raise ConnectionClosedError("the daemon ended the session with Goodbye(done)")
            return None
        if header.type != P.BATCH:
            _raise_for_frame(conn, header, "Batch")
        size = P.HEADER_SIZE + header.payload_length
        if size > self._session.max_frame_size:
            raise OversizeFrameError(f"frame offset 16: Batch payload_length {header.payload_length} exceeds this session's "
                                     f"largest Batch ({self._session.max_frame_size - P.HEADER_SIZE})", "payload_length")
        if size > len(buf):
            grown = self._buffers.grow(buf, min(self._session.max_frame_size, max(size, 2 * len(buf))))
            grown[:P.HEADER_SIZE] = buf[:P.HEADER_SIZE]
            buf = grown
        conn.recv_exact(memoryview(buf)[P.HEADER_SIZE:size], "Batch payload")
        batch = Batch(buf, size, self._session, expected_step=self._next_step)
        self._next_step += 1
        self._cursor = batch.cursor
        self._owes_credit = True
        return batch

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        batch = self.next()
        if batch is None:
            raise StopIteration
        return batch

    @property
    def ended(self) -> bool:
        """Whether the daemon sent end_of_stream."""
        return self._ended

    # -- end -----------------------------------------------------------------------------------------

    def close(self, send_goodbye: bool = True) -> None:
        """Ends the session (``Goodbye(done)`` unless the connection already failed) and closes the socket.

        Batches already returned stay readable until their buffers are freed.
        """
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if send_goodbye:
            try:
                conn.send(P.encode_goodbye(P.GOODBYE_DONE))
            except TokenfeedError:
                pass
        conn.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if self._conn is not None:
                self._conn.close()
        except Exception:
            pass


def fetch_stats(socket_path: str, timeout: float | None = 10.0, request_id: int = 1, prometheus: bool = False) -> P.Stats:
    """The daemon's state, over a stats-only connection (StatsRequest, Stats, Goodbye). With
    ``prometheus``, ``Stats.prometheus_text`` holds the daemon's metrics in the Prometheus text
    format (what its ``GET /metrics`` endpoint serves).

    Raises:
        A :class:`~tokenfeed.errors.TokenfeedError` (the daemon's Error, a malformed Stats, a closed
        connection, a timeout).
    """
    conn = _Connection(socket_path, timeout)
    try:
        conn.send(P.encode_stats_request(request_id, prometheus), answer_follows=True)
        head = bytearray(P.HEADER_SIZE)
        header = conn.recv_header(head)
        if header.type != P.STATS:
            _raise_for_frame(conn, header, "Stats")
        if header.request_id != request_id:
            raise MalformedFrameError(f"frame offset 12: Stats request_id {header.request_id} does not answer {request_id}", "request_id")
        stats = P.Stats.decode(conn.recv_payload(header))
        try:
            conn.send(P.encode_goodbye(P.GOODBYE_DONE))
        except TokenfeedError:
            pass
        return stats
    finally:
        conn.close()
