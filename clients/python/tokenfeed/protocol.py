"""The tokenfeed wire protocol, version 1, as specified in docs/PROTOCOL.md (no I/O here).

Frames are a 24-byte header (:class:`FrameHeader`) followed by a payload. This module encodes the
messages a client sends (``Hello``, ``Credit``, ``StatsRequest``, ``Goodbye``, ``Error``), decodes
every message, and validates everything a receiver must check. Errors are the typed
:mod:`tokenfeed.errors`, naming the field and its frame offset.

The ``Batch`` message is decoded in place by :class:`~tokenfeed.batch.Batch` (see batch.py); this
module holds its layout arithmetic (:func:`batch_token_offset`, :func:`max_batch_frame_size`).
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from typing import Sequence

from .errors import (
    BadCursorError,
    BadMagicError,
    MalformedFrameError,
    OversizeFrameError,
    TokenfeedError,
    UnknownMessageTypeError,
    UnsupportedVersionError,
    error_for_code,
)

MAGIC = b"TKFD"
VERSION = 1
HEADER_SIZE = 24
_HEADER = struct.Struct("<4sHHIIQ")

# Message types (section 3).
HELLO, WELCOME, CREDIT, BATCH, STATS_REQUEST, STATS, ERROR, GOODBYE = range(1, 9)
MESSAGE_NAMES = {
    HELLO: "Hello", WELCOME: "Welcome", CREDIT: "Credit", BATCH: "Batch",
    STATS_REQUEST: "StatsRequest", STATS: "Stats", ERROR: "Error", GOODBYE: "Goodbye",
}
#: Exact payload sizes of the fixed-size types.
FIXED_PAYLOAD = {CREDIT: 4, GOODBYE: 4}
#: Upper payload limits of the other types.
PAYLOAD_LIMIT = {
    HELLO: 4096, WELCOME: 64 << 20, BATCH: 1 << 30, STATS: 16 << 20, ERROR: 8200,
    STATS_REQUEST: 4,  # empty, or u32 flags
}
STATS_FLAG_PROMETHEUS = 1
MAX_PROMETHEUS_TEXT = 12 << 20

# Goodbye reasons (section 6.8).
GOODBYE_DONE = 0
GOODBYE_END_OF_STREAM = 1

# Limits (section 9).
MAX_JOB_ID = 256
MAX_AUTH_TOKEN = 1024
MAX_STAGE_NAME = 256
MAX_DATASET_NAME = 1024
MAX_SHARD_PATH = 4096
MAX_SHARDS_PER_DATASET = 1 << 24
MAX_ERROR_TEXT = 4096
MAX_SEQUENCE_LENGTH = (1 << 24) - 1
MAX_BATCH_SIZE = 1 << 20
OPEN_END = 0xFFFFFFFFFFFFFFFF
PADDING_SHARD = 0xFFFFFFFF

CURSOR_SIZE = 56
CURSOR_MAGIC = b"TKCR"
CURSOR_VERSION = 1
CURSOR_TEXT_PREFIX = "tfc1-"
_CURSOR = struct.Struct("<4sHHQQQIIQI")  # without the trailing crc32
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_F64 = struct.Struct("<d")


# ----------------------------------------------------------------------------------------------
# Frame header


@dataclasses.dataclass(frozen=True)
class FrameHeader:
    """The 24-byte frame header (section 3)."""

    type: int
    request_id: int
    payload_length: int
    version: int = VERSION
    flags: int = 0

    def encode(self) -> bytes:
        """The 24 header bytes."""
        return _HEADER.pack(MAGIC, self.version, self.type, self.flags, self.request_id, self.payload_length)


def decode_header(data: bytes | bytearray | memoryview) -> FrameHeader:
    """Decodes and validates a frame header from its first 24 bytes, in the order of section 3.

    Raises:
        BadMagicError, UnsupportedVersionError, UnknownMessageTypeError, MalformedFrameError
        (non-zero flags, payload shorter than a fixed size), OversizeFrameError.
    """
    if len(data) < HEADER_SIZE:
        raise MalformedFrameError(f"frame header is {len(data)} bytes, needs {HEADER_SIZE}", "header")
    magic, version, mtype, flags, request_id, length = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise BadMagicError(f"frame offset 0: magic is {bytes(magic).hex(' ')}, expected 54 4b 46 44 (TKFD)", "magic")
    if version != VERSION:
        raise UnsupportedVersionError(f"frame offset 4: version {version} is not supported (this client speaks 1)", "version")
    if mtype not in MESSAGE_NAMES:
        raise UnknownMessageTypeError(f"frame offset 6: message type {mtype} is not 1-8", "type")
    if flags != 0:
        raise MalformedFrameError(f"frame offset 8: flags are 0x{flags:08x}, must be 0", "flags")
    name = MESSAGE_NAMES[mtype]
    if mtype in FIXED_PAYLOAD:
        size = FIXED_PAYLOAD[mtype]
        if length > size:
            raise OversizeFrameError(f"frame offset 16: {name} payload_length {length} exceeds its size {size}", "payload_length")
        if length < size:
            raise MalformedFrameError(f"frame offset 16: {name} payload_length {length} is below its size {size}", "payload_length")
    elif length > PAYLOAD_LIMIT[mtype]:
        raise OversizeFrameError(f"frame offset 16: {name} payload_length {length} exceeds the limit {PAYLOAD_LIMIT[mtype]}", "payload_length")
    return FrameHeader(type=mtype, request_id=request_id, payload_length=length, version=version, flags=flags)


def frame(mtype: int, payload: bytes, request_id: int = 0) -> bytes:
    """A whole frame: header plus ``payload``."""
    return FrameHeader(mtype, request_id, len(payload)).encode() + payload


# ----------------------------------------------------------------------------------------------
# Payload reading


class PayloadReader:
    """Reads fields of one payload, checking every length against the bytes that remain.

    Errors are :class:`MalformedFrameError` naming the field and its frame offset (payload offset + 24).
    """

    def __init__(self, data: bytes | bytearray | memoryview, message: str):
        self.data = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
        self.pos = 0
        self.message = message

    def fail(self, field: str, problem: str, at: int | None = None) -> MalformedFrameError:
        where = HEADER_SIZE + (self.pos if at is None else at)
        return MalformedFrameError(f"{self.message}.{field} at frame offset {where}: {problem}", f"{self.message}.{field}")

    def need(self, n: int, field: str) -> None:
        if n > len(self.data) - self.pos:
            raise self.fail(field, f"needs {n} bytes, {len(self.data) - self.pos} remain")

    def _unpack(self, s: struct.Struct, field: str):
        self.need(s.size, field)
        (v,) = s.unpack_from(self.data, self.pos)
        self.pos += s.size
        return v

    def u8(self, field: str) -> int:
        self.need(1, field)
        v = self.data[self.pos]
        self.pos += 1
        return v

    def u16(self, field: str) -> int:
        return self._unpack(_U16, field)

    def u32(self, field: str) -> int:
        return self._unpack(_U32, field)

    def u64(self, field: str) -> int:
        return self._unpack(_U64, field)

    def f64(self, field: str) -> float:
        return self._unpack(_F64, field)

    def reserved(self, size: int, field: str = "reserved") -> None:
        at = self.pos
        value = {1: self.u8, 2: self.u16, 4: self.u32, 8: self.u64}[size](field)
        if value != 0:
            raise self.fail(field, f"reserved field is {value}, must be 0", at)

    def raw(self, n: int, field: str) -> bytes:
        self.need(n, field)
        v = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return v

    def str16(self, field: str, limit: int) -> str:
        at = self.pos
        n = self.u16(field + ".length")
        if n > limit:
            raise self.fail(field, f"string of {n} bytes exceeds the limit of {limit}", at)
        raw = self.raw(n, field)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.fail(field, f"invalid UTF-8 ({e.reason} at byte {e.start})", at + 2 + e.start) from None

    def count(self, field: str, element_min_size: int, limit: int) -> int:
        """A ``list<T>`` count, checked against ``limit`` and against the bytes that remain."""
        at = self.pos
        n = self.u32(field + ".count")
        if n > limit:
            raise self.fail(field, f"{n} entries exceed the limit of {limit}", at)
        if n * element_min_size > len(self.data) - self.pos:
            raise self.fail(field, f"{n} entries need at least {n * element_min_size} bytes, {len(self.data) - self.pos} remain", at)
        return n

    def end(self) -> None:
        if self.pos != len(self.data):
            raise self.fail("end", f"{len(self.data) - self.pos} trailing bytes after the last field")


class PayloadWriter:
    """Builds a payload field by field."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def u8(self, v: int) -> None:
        self.parts.append(bytes([v]))

    def u16(self, v: int) -> None:
        self.parts.append(_U16.pack(v))

    def u32(self, v: int) -> None:
        self.parts.append(_U32.pack(v))

    def u64(self, v: int) -> None:
        self.parts.append(_U64.pack(v))

    def f64(self, v: float) -> None:
        self.parts.append(_F64.pack(v))

    def raw(self, b: bytes) -> None:
        self.parts.append(bytes(b))

    def str16(self, s: str, limit: int, field: str) -> None:
        b = s.encode("utf-8")
        if len(b) > limit:
            raise ValueError(f"{field} is {len(b)} bytes, the limit is {limit}")
        self.u16(len(b))
        self.parts.append(b)

    def bytes(self) -> bytes:
        return b"".join(self.parts)


# ----------------------------------------------------------------------------------------------
# Cursor (section 8)


@dataclasses.dataclass(frozen=True)
class Cursor:
    """A resume cursor: a global stream position (section 8).

    ``bytes(cursor)`` is its 56-byte form, ``str(cursor)`` its text form (``tfc1-`` + 112 hex digits).
    """

    fingerprint: int
    next_step: int
    next_sequence: int
    world_size: int
    batch_size: int
    quarantine_digest: int = 0

    def encode(self) -> bytes:
        """The 56 bytes, with the CRC-32 computed."""
        body = _CURSOR.pack(CURSOR_MAGIC, CURSOR_VERSION, 0, self.fingerprint, self.next_step,
                            self.next_sequence, self.world_size, self.batch_size, self.quarantine_digest, 0)
        return body + _U32.pack(zlib.crc32(body))

    def __bytes__(self) -> bytes:
        return self.encode()

    def to_text(self) -> str:
        """The text form, without a newline."""
        return CURSOR_TEXT_PREFIX + self.encode().hex()

    def __str__(self) -> str:
        return self.to_text()

    @staticmethod
    def decode(data: bytes | bytearray | memoryview, where: str = "cursor", base: int = 0) -> "Cursor":
        """Decodes and validates 56 cursor bytes.

        ``where`` and ``base`` (the frame offset of the cursor, when it is in a frame) name the place
        in error messages.

        Raises:
            BadCursorError: wrong size, magic, version, reserved fields or CRC, a zero world or batch
                size, or ``next_sequence ≠ next_step × world_size × batch_size``.
        """
        data = bytes(data)

        def bad(offset: int, problem: str) -> BadCursorError:
            at = f"frame offset {base + offset}" if base else f"byte {offset}"
            return BadCursorError(f"{where} {at}: {problem}", where)

        if len(data) != CURSOR_SIZE:
            raise bad(0, f"a cursor is {CURSOR_SIZE} bytes, got {len(data)}")
        magic, version, res0, fp, step, seq, ws, bs, digest, res1 = _CURSOR.unpack_from(data, 0)
        (crc,) = _U32.unpack_from(data, 52)
        if magic != CURSOR_MAGIC:
            raise bad(0, f"magic is {magic.hex(' ')}, expected 54 4b 43 52 (TKCR)")
        if version != CURSOR_VERSION:
            raise bad(4, f"cursor version {version} is not supported")
        if res0 != 0:
            raise bad(6, "reserved field is not 0")
        if res1 != 0:
            raise bad(48, "reserved field is not 0")
        computed = zlib.crc32(data[:52])
        if crc != computed:
            raise bad(52, f"CRC-32 mismatch (stored 0x{crc:08x}, computed 0x{computed:08x})")
        if ws == 0 or bs == 0:
            raise bad(32, f"world_size {ws} and batch_size {bs} must be at least 1")
        if seq != step * ws * bs:
            raise bad(24, f"next_sequence {seq} is not next_step {step} × world_size {ws} × batch_size {bs}")
        return Cursor(fp, step, seq, ws, bs, digest)

    @staticmethod
    def from_text(text: str) -> "Cursor":
        """Parses the text form (surrounding whitespace ignored, hex digits of either case)."""
        t = text.strip()
        if not t.startswith(CURSOR_TEXT_PREFIX):
            raise BadCursorError(f"cursor text does not start with {CURSOR_TEXT_PREFIX!r}", "cursor")
        digits = t[len(CURSOR_TEXT_PREFIX):]
        if len(digits) != 2 * CURSOR_SIZE:
            raise BadCursorError(f"cursor text has {len(digits)} hex digits, expected {2 * CURSOR_SIZE}", "cursor")
        try:
            raw = bytes.fromhex(digits)
        except ValueError:
            raise BadCursorError("cursor text holds a character that is not a hex digit", "cursor") from None
        return Cursor.decode(raw)

    @staticmethod
    def parse(value: "Cursor | bytes | bytearray | memoryview | str") -> "Cursor":
        """A cursor from a :class:`Cursor`, its 56 bytes or its text form."""
        if isinstance(value, Cursor):
            return value
        if isinstance(value, str):
            return Cursor.from_text(value)
        return Cursor.decode(value)


# ----------------------------------------------------------------------------------------------
# Messages


@dataclasses.dataclass(frozen=True)
class Hello:
    """Hello (type 1, section 6.1). ``rank`` is the data-parallel rank; ``replicas`` > 1 joins that
    rank's session as replica ``replica_index`` (tensor/pipeline parallelism, section 4.1)."""

    rank: int
    world_size: int
    batch_size: int
    initial_credits: int
    cursor: Cursor | None = None
    job_id: str = ""
    auth_token: str = ""
    replicas: int = 1
    replica_index: int = 0

    def payload(self) -> bytes:
        w = PayloadWriter()
        for v in (self.rank, self.world_size, self.batch_size, self.initial_credits):
            w.u32(v)
        if self.cursor is None:
            w.u16(0)
        else:
            w.u16(CURSOR_SIZE)
            w.raw(self.cursor.encode())
        w.str16(self.job_id, MAX_JOB_ID, "job_id")
        w.str16(self.auth_token, MAX_AUTH_TOKEN, "auth_token")
        if self.replicas > 1:  # optional: a Hello without replicas is byte for byte what it always was
            w.u16(self.replicas)
            w.u16(self.replica_index)
        return w.bytes()

    def encode(self, request_id: int) -> bytes:
        """The whole frame."""
        return frame(HELLO, self.payload(), request_id)

    @staticmethod
    def decode(payload: bytes | memoryview) -> "Hello":
        r = PayloadReader(payload, "Hello")
        rank, ws, bs, credits = r.u32("rank"), r.u32("world_size"), r.u32("batch_size"), r.u32("initial_credits")
        at = r.pos
        n = r.u16("cursor_length")
        if n not in (0, CURSOR_SIZE):
            raise r.fail("cursor_length", f"is {n}, must be 0 or {CURSOR_SIZE}", at)
        cursor = None
        if n:
            at = r.pos
            cursor = Cursor.decode(r.raw(n, "cursor"), "Hello.cursor", HEADER_SIZE + at)
        job = r.str16("job_id", MAX_JOB_ID)
        token = r.str16("auth_token", MAX_AUTH_TOKEN)
        replicas, index = 1, 0
        if len(r.data) - r.pos >= 4:
            at = r.pos
            replicas = r.u16("replicas")
            if replicas < 1:
                raise r.fail("replicas", "must be at least 1", at)
            at = r.pos
            index = r.u16("replica_index")
            if index >= replicas:
                raise r.fail("replica_index", f"{index} is not below replicas {replicas}", at)
        r.end()
        if ws < 1:
            raise r.fail("world_size", "must be at least 1", 4)
        if bs < 1:
            raise r.fail("batch_size", "must be at least 1", 8)
        return Hello(rank, ws, bs, credits, cursor, job, token, replicas, index)


@dataclasses.dataclass(frozen=True)
class Stage:
    """A curriculum stage: tokens ``[start_token, end_token)``; ``end_token`` is ``OPEN_END`` when open."""

    start_token: int
    end_token: int
    name: str

    def contains_sequence(self, index: int, sequence_length: int) -> bool:
        """Whether global sequence ``index`` (starting at token ``index × L``) belongs to this stage."""
        t = index * sequence_length
        return self.start_token <= t < self.end_token


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset: its name and its shard files, relative to the daemon's data root."""

    name: str
    shard_paths: tuple[str, ...]


def _stages(r: PayloadReader, field: str, allow_empty: bool) -> tuple[Stage, ...]:
    n = r.count(field, 18, 65535)
    if n == 0 and not allow_empty:
        raise r.fail(field, "at least one stage is required", r.pos - 4)
    stages = []
    for i in range(n):
        at = r.pos
        start = r.u64(f"{field}[{i}].start_token")
        end = r.u64(f"{field}[{i}].end_token")
        name = r.str16(f"{field}[{i}].name", MAX_STAGE_NAME)
        expected_start = 0 if i == 0 else stages[-1].end_token
        if start != expected_start:
            raise r.fail(f"{field}[{i}].start_token", f"is {start}; stages are contiguous from 0, expected {expected_start}", at)
        if end <= start:
            raise r.fail(f"{field}[{i}].end_token", f"{end} is not after start_token {start}", at + 8)
        if end == OPEN_END and i != n - 1:
            raise r.fail(f"{field}[{i}].end_token", "only the last stage may be open-ended", at + 8)
        stages.append(Stage(start, end, name))
    return tuple(stages)


@dataclasses.dataclass(frozen=True)
class Welcome:
    """Welcome (type 2, section 6.2)."""

    sequence_length: int
    token_width: int
    vocabulary_size: int
    fingerprint: int
    start_cursor: Cursor
    stages: tuple[Stage, ...]
    datasets: tuple[Dataset, ...]

    def stage_of_sequence(self, index: int) -> int:
        """Index of the stage global sequence ``index`` belongs to."""
        t = index * self.sequence_length
        for k, s in enumerate(self.stages):
            if s.start_token <= t < s.end_token:
                return k
        raise ValueError(f"sequence {index} (token {t}) is past the last stage")

    def payload(self) -> bytes:
        w = PayloadWriter()
        w.u32(self.sequence_length)
        w.u8(self.token_width)
        w.u8(0)
        w.u16(0)
        w.u32(self.vocabulary_size)
        w.u32(0)
        w.u64(self.fingerprint)
        w.raw(self.start_cursor.encode())
        w.u32(len(self.stages))
        for s in self.stages:
            w.u64(s.start_token)
            w.u64(s.end_token)
            w.str16(s.name, MAX_STAGE_NAME, "stage name")
        w.u32(len(self.datasets))
        for d in self.datasets:
            w.str16(d.name, MAX_DATASET_NAME, "dataset name")
            w.u32(len(d.shard_paths))
            for p in d.shard_paths:
                w.str16(p, MAX_SHARD_PATH, "shard path")
        return w.bytes()

    def encode(self, request_id: int) -> bytes:
        return frame(WELCOME, self.payload(), request_id)

    @staticmethod
    def decode(payload: bytes | memoryview) -> "Welcome":
        """Decodes and validates a Welcome payload.

        Raises:
            MalformedFrameError naming the field; BadCursorError for an invalid ``start_cursor``.
        """
        r = PayloadReader(payload, "Welcome")
        L = r.u32("sequence_length")
        if not 1 <= L <= MAX_SEQUENCE_LENGTH:
            raise r.fail("sequence_length", f"{L} is not in 1...{MAX_SEQUENCE_LENGTH}", 0)
        w = r.u8("token_width")
        if w not in (2, 4):
            raise r.fail("token_width", f"{w} is not 2 or 4", 4)
        r.reserved(1)
        r.reserved(2)
        vocab = r.u32("vocabulary_size")
        if vocab < 1 or (w == 2 and vocab > 65536):
            raise r.fail("vocabulary_size", f"{vocab} does not fit token_width {w}", 8)
        r.reserved(4)
        fp = r.u64("fingerprint")
        cursor = Cursor.decode(r.raw(CURSOR_SIZE, "start_cursor"), "Welcome.start_cursor", HEADER_SIZE + 24)
        if cursor.fingerprint != fp:
            raise r.fail("start_cursor", f"fingerprint 0x{cursor.fingerprint:016x} differs from the Welcome's 0x{fp:016x}", 24)
        stages = _stages(r, "stages", allow_empty=False)
        n = r.count("datasets", 6, 65535)
        if n == 0:
            raise r.fail("datasets", "at least one dataset is required", r.pos - 4)
        datasets = []
        for i in range(n):
            name = r.str16(f"datasets[{i}].name", MAX_DATASET_NAME)
            m = r.count(f"datasets[{i}].shard_paths", 2, MAX_SHARDS_PER_DATASET)
            paths = tuple(r.str16(f"datasets[{i}].shard_paths[{j}]", MAX_SHARD_PATH) for j in range(m))
            datasets.append(Dataset(name, paths))
        r.end()
        return Welcome(L, w, vocab, fp, cursor, stages, tuple(datasets))


def encode_credit(count: int) -> bytes:
    """A Credit frame granting ``count ≥ 1`` more batches."""
    if not 1 <= count <= 0xFFFFFFFF:
        raise ValueError(f"credit count {count} is not in 1...2^32-1")
    return frame(CREDIT, _U32.pack(count))


def decode_credit(payload: bytes | memoryview) -> int:
    r = PayloadReader(payload, "Credit")
    n = r.u32("count")
    if n < 1:
        raise r.fail("count", "must be at least 1", 0)
    return n


def encode_stats_request(request_id: int, prometheus: bool = False) -> bytes:
    """A StatsRequest frame: empty, or with the ``prometheus`` flag (the answer then carries the
    daemon's metrics in the Prometheus text format)."""
    return frame(STATS_REQUEST, struct.pack("<I", STATS_FLAG_PROMETHEUS) if prometheus else b"", request_id)


def encode_goodbye(reason: int = GOODBYE_DONE) -> bytes:
    """A Goodbye frame: reason 0 done, 1 end_of_stream."""
    if reason not in (GOODBYE_DONE, GOODBYE_END_OF_STREAM):
        raise ValueError(f"Goodbye reason {reason} is not 0 or 1")
    return frame(GOODBYE, _U16.pack(reason) + b"\0\0")


def decode_goodbye(payload: bytes | memoryview) -> int:
    """The Goodbye reason (0 done, 1 end_of_stream)."""
    r = PayloadReader(payload, "Goodbye")
    reason = r.u16("reason")
    if reason not in (GOODBYE_DONE, GOODBYE_END_OF_STREAM):
        raise r.fail("reason", f"{reason} is not 0 (done) or 1 (end_of_stream)", 0)
    r.reserved(2)
    return reason


@dataclasses.dataclass(frozen=True)
class ErrorMessage:
    """Error (type 7, section 6.7)."""

    code: int
    message: str
    detail: str = ""

    def payload(self) -> bytes:
        w = PayloadWriter()
        w.u16(self.code)
        w.u16(0)
        w.str16(self.message, MAX_ERROR_TEXT, "message")
        w.str16(self.detail, MAX_ERROR_TEXT, "detail")
        return w.bytes()

    def encode(self, request_id: int = 0) -> bytes:
        return frame(ERROR, self.payload(), request_id)

    def to_exception(self) -> TokenfeedError:
        """The typed exception for this error, marked as sent by the daemon."""
        return error_for_code(self.code, self.message, self.detail, remote=True)

    @staticmethod
    def decode(payload: bytes | memoryview) -> "ErrorMessage":
        r = PayloadReader(payload, "Error")
        code = r.u16("code")
        r.reserved(2)
        message = r.str16("message", MAX_ERROR_TEXT)
        detail = r.str16("detail", MAX_ERROR_TEXT)
        r.end()
        return ErrorMessage(code, message, detail)


@dataclasses.dataclass(frozen=True)
class DatasetStats:
    target_share: float
    realized_share: float
    tokens_served: int
    epoch: int
    quarantined_shards: int
    name: str


@dataclasses.dataclass(frozen=True)
class ClientStats:
    rank: int
    world_size: int
    batch_size: int
    credits: int
    next_step: int
    batches_sent: int
    wait_ns_total: int
    wait_ns_max: int
    job_id: str


@dataclasses.dataclass(frozen=True)
class Stats:
    """Stats (type 6, section 6.6)."""

    current_stage: int
    sequence_length: int
    position_sequence: int
    tokens_served: int
    batches_served: int
    ring_capacity: int
    ring_occupied: int
    preload_bytes: int
    preload_budget_bytes: int
    uptime_ms: int
    stages: tuple[Stage, ...]
    datasets: tuple[DatasetStats, ...]
    clients: tuple[ClientStats, ...]
    prometheus_text: str | None = None

    @staticmethod
    def decode(payload: bytes | memoryview) -> "Stats":
        r = PayloadReader(payload, "Stats")
        head = [r.u32("current_stage"), r.u32("sequence_length"), r.u64("position_sequence"),
                r.u64("tokens_served"), r.u64("batches_served"), r.u32("ring_capacity"),
                r.u32("ring_occupied"), r.u64("preload_bytes"), r.u64("preload_budget_bytes"),
                r.u64("uptime_ms")]
        stages = _stages(r, "stages", allow_empty=True)
        if stages and head[0] >= len(stages):
            raise r.fail("current_stage", f"{head[0]} is not below the stage count {len(stages)}", 0)
        n = r.count("datasets", 34, 65535)
        datasets = tuple(
            DatasetStats(r.f64(f"datasets[{i}].target_share"), r.f64(f"datasets[{i}].realized_share"),
                         r.u64(f"datasets[{i}].tokens_served"), r.u32(f"datasets[{i}].epoch"),
                         r.u32(f"datasets[{i}].quarantined_shards"),
                         r.str16(f"datasets[{i}].name", MAX_DATASET_NAME))
            for i in range(n))
        n = r.count("clients", 50, 65535)
        clients = tuple(
            ClientStats(r.u32(f"clients[{i}].rank"), r.u32(f"clients[{i}].world_size"),
                        r.u32(f"clients[{i}].batch_size"), r.u32(f"clients[{i}].credits"),
                        r.u64(f"clients[{i}].next_step"), r.u64(f"clients[{i}].batches_sent"),
                        r.u64(f"clients[{i}].wait_ns_total"), r.u64(f"clients[{i}].wait_ns_max"),
                        r.str16(f"clients[{i}].job_id", MAX_JOB_ID))
            for i in range(n))
        text = None
        if r.pos < len(r.data):
            start = r.pos
            length = r.u32("prometheus_text.length")
            if length > MAX_PROMETHEUS_TEXT:
                raise r.fail("prometheus_text", f"length {length} exceeds the limit of {MAX_PROMETHEUS_TEXT} bytes", start)
            try:
                text = r.raw(length, "prometheus_text").decode("utf-8")
            except UnicodeDecodeError:
                raise r.fail("prometheus_text", "not valid UTF-8", start + 4) from None
        r.end()
        return Stats(*head, stages, datasets, clients, text)


# ----------------------------------------------------------------------------------------------
# Batch layout arithmetic (section 6.4)

BATCH_FIXED = 120
ROW_SIZE = 32
PIECE_SIZE = 24


def batch_token_offset(batch_size: int, piece_count: int) -> int:
    """``T``: the frame offset of the token block, ``ceil((120 + 36·B + 28·P) / 64) · 64``."""
    meta = BATCH_FIXED + 36 * batch_size + 28 * piece_count
    return (meta + 63) // 64 * 64


def batch_frame_size(batch_size: int, sequence_length: int, token_width: int, piece_count: int) -> int:
    """Total bytes of a Batch frame (header included)."""
    return batch_token_offset(batch_size, piece_count) + batch_size * (sequence_length + 1) * token_width


def max_batch_frame_size(batch_size: int, sequence_length: int, token_width: int) -> int:
    """The largest Batch frame a session can receive (``P = B·(L+1)``)."""
    return batch_frame_size(batch_size, sequence_length, token_width, batch_size * (sequence_length + 1))


def read_hex_vector(text: str) -> bytes:
    """The bytes of a test-vector file: ``#`` starts a comment, the rest is whitespace-separated hex."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()))


def decode_frame(data: bytes | memoryview) -> tuple[FrameHeader, memoryview]:
    """Splits one whole frame into its validated header and its payload (which must fill the rest).

    Raises:
        The header errors of :func:`decode_header`; MalformedFrameError when the bytes after the header
        are not exactly ``payload_length``.
    """
    header = decode_header(data)
    payload = memoryview(data)[HEADER_SIZE:]
    if len(payload) != header.payload_length:
        raise MalformedFrameError(
            f"frame offset 16: payload_length {header.payload_length} but {len(payload)} payload bytes follow",
            "payload_length")
    return header, payload


__all__: Sequence[str] = [
    "FrameHeader", "decode_header", "decode_frame", "Cursor", "Hello", "Welcome", "Stage", "Dataset",
    "Stats", "DatasetStats", "ClientStats", "ErrorMessage", "encode_credit", "decode_credit",
    "encode_stats_request", "encode_goodbye", "decode_goodbye", "batch_token_offset",
    "max_batch_frame_size", "batch_frame_size", "read_hex_vector",
]
