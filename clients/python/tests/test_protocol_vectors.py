"""The decoder and encoder against the worked examples of docs/PROTOCOL.md section 10, byte for byte
(the hex vectors in Tests/ProtocolVectors/), plus the receiver checks of the doc on corrupted copies."""

from __future__ import annotations

import pathlib
import struct
import zlib

import numpy as np
import pytest

from tokenfeed import errors as E
from tokenfeed import protocol as P
from tokenfeed.batch import Batch, Session

REPO = pathlib.Path(__file__).resolve().parents[3]
VECTORS = REPO / "Tests" / "ProtocolVectors"


def vector(name: str) -> bytes:
    return P.read_hex_vector((VECTORS / name).read_text())


def payload_of(name: str, mtype: int, request_id: int = 0) -> memoryview:
    header, payload = P.decode_frame(vector(name))
    assert header.type == mtype
    assert header.request_id == request_id
    return payload


CURSOR = P.Cursor(fingerprint=0x0123456789ABCDEF, next_step=3, next_sequence=12, world_size=2, batch_size=2)


def test_vector_files_exist():
    assert sorted(p.name for p in VECTORS.iterdir()) == sorted([
        "batch.hex", "credit.hex", "cursor.hex", "cursor.txt", "error.hex", "goodbye.hex", "hello.hex",
        "hello_replica.hex", "hello_resume.hex", "stats.hex", "stats_prometheus.hex", "stats_request.hex",
        "stats_request_prometheus.hex", "welcome.hex"])


def test_cursor_vector():
    raw = vector("cursor.hex")
    assert len(raw) == 56
    assert P.Cursor.decode(raw) == CURSOR
    assert CURSOR.encode() == raw
    assert struct.unpack_from("<I", raw, 52)[0] == 0xF903F7B0
    text = (VECTORS / "cursor.txt").read_text()
    assert P.Cursor.from_text(text) == CURSOR
    assert CURSOR.to_text() + "\n" == text or CURSOR.to_text() == text.strip()
    assert P.Cursor.from_text("  " + text.strip().upper().replace("TFC1-", "tfc1-") + "\n") == CURSOR


def test_crc32_is_zlib():
    assert zlib.crc32(b"123456789") == 0xCBF43926


@pytest.mark.parametrize("offset,value,problem", [
    (0, 0x58, "magic"), (4, 2, "version"), (6, 1, "reserved"), (48, 1, "reserved"), (52, 0, "CRC"),
])
def test_cursor_rejects_corruption(offset, value, problem):
    raw = bytearray(vector("cursor.hex"))
    raw[offset] = value
    with pytest.raises(E.BadCursorError, match=problem):
        P.Cursor.decode(raw)


def test_cursor_rejects_inconsistent_position():
    bad = bytearray(P.Cursor(1, 3, 13, 2, 2).encode())  # 13 ≠ 3·2·2, CRC recomputed
    with pytest.raises(E.BadCursorError, match="next_sequence"):
        P.Cursor.decode(bad)
    with pytest.raises(E.BadCursorError, match="world_size"):
        P.Cursor.decode(P.Cursor(1, 0, 0, 0, 2).encode())


def test_hello_vectors_encode_and_decode():
    hello = P.Hello(rank=1, world_size=2, batch_size=2, initial_credits=4, cursor=None, job_id="job-7")
    assert hello.encode(request_id=1) == vector("hello.hex")
    assert P.Hello.decode(payload_of("hello.hex", P.HELLO, 1)) == hello

    resume = P.Hello(1, 2, 2, 4, CURSOR, "job-7", "s3cret")
    raw = vector("hello_resume.hex")
    assert resume.encode(request_id=1) == raw
    assert raw[42:42 + 56] == CURSOR.encode()  # "The cursor starts at frame offset 42."
    assert P.Hello.decode(payload_of("hello_resume.hex", P.HELLO, 1)) == resume


def test_welcome_vector():
    w = P.Welcome.decode(payload_of("welcome.hex", P.WELCOME, 1))
    assert (w.sequence_length, w.token_width, w.vocabulary_size) == (7, 2, 50000)
    assert w.fingerprint == 0x0123456789ABCDEF
    assert w.start_cursor == CURSOR
    assert w.stages == (P.Stage(0, 56, "stable"), P.Stage(56, P.OPEN_END, "decay"))
    assert w.datasets == (P.Dataset("web", ("web/00000.tfs", "web/00001.tfs")), P.Dataset("code", ("code/00000.tfs",)))
    assert w.encode(request_id=1) == vector("welcome.hex")
    # A boundary at token 56 with L = 7 starts with sequence 8.
    assert [w.stage_of_sequence(i) for i in (0, 7, 8, 100)] == [0, 0, 1, 1]


def test_credit_stats_request_goodbye_vectors():
    assert P.encode_credit(4) == vector("credit.hex")
    assert P.decode_credit(payload_of("credit.hex", P.CREDIT)) == 4
    assert P.encode_stats_request(9) == vector("stats_request.hex")
    P.decode_frame(vector("stats_request.hex"))
    assert P.encode_goodbye(P.GOODBYE_END_OF_STREAM) == vector("goodbye.hex")
    assert P.decode_goodbye(payload_of("goodbye.hex", P.GOODBYE)) == P.GOODBYE_END_OF_STREAM


def test_error_vector():
    e = P.ErrorMessage.decode(payload_of("error.hex", P.ERROR, 1))
    assert e.code == 7
    assert e.message == 'world_size 4 differs from job "job-7" (world_size 2)'
    assert e.detail == "Hello.world_size"
    assert e.encode(request_id=1) == vector("error.hex")
    exc = e.to_exception()
    assert isinstance(exc, E.JobMismatchError) and isinstance(exc, E.TokenfeedError)
    assert exc.code == 7 and exc.remote and exc.detail == "Hello.world_size"


def test_every_error_code_has_a_class():
    names = ["bad_magic", "unsupported_version", "malformed_frame", "oversize_frame", "unknown_message_type",
             "unexpected_message", "job_mismatch", "rank_out_of_range", "rank_in_use",
             "cursor_fingerprint_mismatch", "bad_cursor", "auth_failed", "data_error", "internal_error",
             "shutting_down"]
    for code, name in enumerate(names, start=1):
        exc = E.error_for_code(code, "m")
        assert exc.code == code and exc.name == name and type(exc) is not E.TokenfeedError
    unknown = E.error_for_code(99, "m")
    assert isinstance(unknown, E.UnknownErrorCodeError) and unknown.code == 99


def test_stats_vector():
    s = P.Stats.decode(payload_of("stats.hex", P.STATS, 9))
    assert (s.current_stage, s.sequence_length, s.position_sequence, s.tokens_served, s.batches_served) == (1, 7, 16, 112, 8)
    assert (s.ring_capacity, s.ring_occupied, s.preload_bytes, s.preload_budget_bytes, s.uptime_ms) == (8, 3, 4096, 1048576, 1500)
    assert [st.name for st in s.stages] == ["stable", "decay"]
    assert s.datasets == (P.DatasetStats(0.75, 0.5, 70, 0, 0, "web"), P.DatasetStats(0.25, 0.5, 42, 1, 0, "code"))
    assert s.clients == (P.ClientStats(1, 2, 2, 3, 4, 4, 2_000_000, 500_000, "job-7"),)
    assert s.prometheus_text is None


def test_stats_request_and_stats_with_prometheus_text_vectors():
    assert P.encode_stats_request(10, prometheus=True) == vector("stats_request_prometheus.hex")
    P.decode_frame(vector("stats_request_prometheus.hex"))
    s = P.Stats.decode(payload_of("stats_prometheus.hex", P.STATS, 10))
    assert s.prometheus_text == "# TYPE tokenfeed_sessions gauge\ntokenfeed_sessions 1\n"
    assert s.clients == P.Stats.decode(payload_of("stats.hex", P.STATS, 9)).clients
    # A truncated or non-UTF-8 text is refused, naming the field.
    raw = bytes(payload_of("stats_prometheus.hex", P.STATS, 10))
    with pytest.raises(E.MalformedFrameError, match="prometheus_text"):
        P.Stats.decode(raw[:-1])
    with pytest.raises(E.MalformedFrameError, match="prometheus_text"):
        P.Stats.decode(raw[:-1] + b"\xff")


# -- Batch ------------------------------------------------------------------------------------------


def session() -> Session:
    w = P.Welcome.decode(payload_of("welcome.hex", P.WELCOME, 1))
    return Session(w, rank=1, world_size=2, batch_size=2)


def load_batch(raw: bytes, expected_step: int | None = 3) -> Batch:
    P.decode_header(raw)
    buf = np.frombuffer(bytearray(raw), dtype=np.uint8)
    return Batch(buf, len(raw), session(), expected_step=expected_step)


def test_batch_vector_fields():
    raw = vector("batch.hex")
    assert len(raw) == 352
    b = load_batch(raw)
    assert (b.step, b.rank, b.world_size, b.batch_size, b.sequence_length, b.token_width, b.piece_count) == (3, 1, 2, 2, 7, 2, 4)
    assert P.batch_token_offset(2, 4) == 320
    assert b.cursor == P.Cursor(0x0123456789ABCDEF, 4, 16, 2, 2)
    assert b.tokens.dtype == np.dtype("<u2") and b.tokens.shape == (2, 8)
    assert b.tokens.tolist() == [[101, 102, 103, 104, 0, 201, 202, 0], [301, 302, 303, 304, 305, 0, 0, 0]]
    # Zero copy: the token array is the frame's bytes at offset T.
    assert np.shares_memory(b.tokens, b._buf)
    assert b.tokens.ctypes.data - b._buf.ctypes.data == 320
    assert b.inputs.tolist() == [[101, 102, 103, 104, 0, 201, 202], [301, 302, 303, 304, 305, 0, 0]]
    assert b.labels.tolist() == [[102, 103, 104, 0, 201, 202, 0], [302, 303, 304, 305, 0, 0, 0]]

    r0, r1 = b.row(0), b.row(1)
    assert (r0.sequence_index, r0.dataset, r0.stage, r0.epoch, r0.padded_tokens) == (14, "web", "decay", 0, 0)
    assert (r1.sequence_index, r1.dataset, r1.stage, r1.epoch, r1.padded_tokens) == (15, "code", "decay", 1, 2)
    assert r0.cu_seqlens.tolist() == [0, 5, 8] and r0.cu_seqlens.dtype == np.int32
    assert r1.cu_seqlens.tolist() == [0, 6, 8]
    assert [(p.shard_path, p.document_index, p.token_offset, p.length, p.start) for p in r0.pieces] == [
        ("web/00001.tfs", 17, 1000, 5, 0), ("web/00001.tfs", 18, 1005, 3, 5)]
    p1 = r1.pieces
    assert (p1[0].shard_path, p1[0].document_index, p1[0].token_offset, p1[0].length) == ("code/00000.tfs", 2, 40, 6)
    assert p1[1].is_padding and p1[1].shard_path is None and p1[1].length == 2

    # Position ids restart per segment (inputs: first L tokens); loss mask from padded_tokens.
    assert b.position_ids.tolist() == [[0, 1, 2, 3, 4, 0, 1], [0, 1, 2, 3, 4, 5, 0]]
    assert r0.loss_mask.tolist() == [True] * 7  # always present
    # Row 1: L + 1 − padded = 6, label t masked when t + 1 ≥ 6.
    assert r1.loss_mask.tolist() == [True] * 5 + [False] * 2
    assert b.loss_mask.tolist() == [[True] * 7, [True] * 5 + [False] * 2]
    assert r0.input_cu_seqlens.tolist() == [0, 5, 7]
    assert r1.input_cu_seqlens.tolist() == [0, 6, 7]
    cu, longest = b.varlen_cu_seqlens()
    assert cu.tolist() == [0, 5, 7, 13, 14] and cu.dtype == np.int32 and longest == 6


def batch_with(offset: int, fmt: str, value: int) -> bytes:
    raw = bytearray(vector("batch.hex"))
    struct.pack_into(fmt, raw, offset, value)
    return bytes(raw)


def with_cursor_after(raw: bytes, cursor: P.Cursor) -> bytes:
    out = bytearray(raw)
    out[64:120] = cursor.encode()
    return bytes(out)


@pytest.mark.parametrize("offset,fmt,value,field", [
    (32, "<I", 0, "rank"),
    (40, "<I", 3, "batch_size"),
    (48, "<B", 4, "token_width"),
    (49, "<B", 1, "reserved"),
    (52, "<I", 5, "token_offset|payload_length|piece_count"),
    (56, "<I", 256, "token_offset"),
    (120, "<Q", 15, r"rows\[0\].sequence_index"),
    (128, "<I", 2, r"rows\[0\].dataset_index"),
    (132, "<I", 0, r"rows\[0\].stage_index"),
    (152 + 16, "<I", 1, r"rows\[1\].first_piece"),
    (152 + 24, "<I", 1, r"rows\[1\].padded_tokens"),
    (184, "<I", 2, r"pieces\[0\].shard_index"),
    (184 + 24 * 3 + 8, "<Q", 1, r"pieces\[3\]"),
    (184, "<I", 0xFFFFFFFF, r"pieces\[0\].shard_index"),
    (184 + 24, "<I", 0xFFFFFFFF, r"rows\[0\].padded_tokens|pieces\[1\]"),
    (184 + 4, "<I", 4, r"cu_seqlens"),
    (280 + 4, "<I", 4, r"cu_seqlens"),
    (280 + 8, "<I", 9, r"cu_seqlens"),
    (304, "<I", 1, "padding"),
])
def test_batch_rejects_inconsistent_fields(offset, fmt, value, field):
    with pytest.raises(E.MalformedFrameError, match=field):
        load_batch(batch_with(offset, fmt, value))


def test_batch_rejects_wrong_step_and_cursor_after():
    with pytest.raises(E.MalformedFrameError, match="step"):
        load_batch(vector("batch.hex"), expected_step=4)
    raw = with_cursor_after(vector("batch.hex"), P.Cursor(0x0123456789ABCDEF, 5, 20, 2, 2))
    with pytest.raises(E.MalformedFrameError, match="cursor_after"):
        load_batch(raw)
    raw = bytearray(vector("batch.hex"))
    raw[100] ^= 1
    with pytest.raises(E.BadCursorError, match="CRC"):
        load_batch(bytes(raw))


def test_batch_rejects_truncated_payload_length():
    raw = vector("batch.hex")
    with pytest.raises(E.MalformedFrameError, match="payload_length"):
        Batch(np.frombuffer(bytearray(raw[:-2]), dtype=np.uint8), len(raw) - 2, session())


# -- Headers --------------------------------------------------------------------------------------


def header_with(offset: int, fmt: str, value: int, base: str = "credit.hex") -> bytes:
    raw = bytearray(vector(base))
    struct.pack_into(fmt, raw, offset, value)
    return bytes(raw)


@pytest.mark.parametrize("raw,error", [
    (header_with(0, "<B", 0x55), E.BadMagicError),
    (header_with(4, "<H", 2), E.UnsupportedVersionError),
    (header_with(6, "<H", 9), E.UnknownMessageTypeError),
    (header_with(6, "<H", 0), E.UnknownMessageTypeError),
    (header_with(8, "<I", 1), E.MalformedFrameError),
    (header_with(16, "<Q", 5), E.OversizeFrameError),
    (header_with(16, "<Q", 3), E.MalformedFrameError),
    (header_with(16, "<Q", 4097, "hello.hex"), E.OversizeFrameError),
    (header_with(16, "<Q", (1 << 30) + 1, "batch.hex"), E.OversizeFrameError),
    (header_with(16, "<Q", 5, "stats_request.hex"), E.OversizeFrameError),
])
def test_header_validation(raw, error):
    with pytest.raises(error):
        P.decode_header(raw[:24])


def test_header_checks_come_in_order():
    raw = bytearray(vector("credit.hex"))
    raw[0] = 0  # bad magic and a bad version: magic is reported
    struct.pack_into("<H", raw, 4, 7)
    with pytest.raises(E.BadMagicError):
        P.decode_header(raw)


def test_hello_replica_vector():
    hello = P.Hello(rank=1, world_size=2, batch_size=2, initial_credits=4, cursor=None, job_id="job-7",
                    replicas=2, replica_index=1)
    assert hello.encode(request_id=1) == vector("hello_replica.hex")
    assert P.Hello.decode(payload_of("hello_replica.hex", P.HELLO, 1)) == hello
    # Without replicas the Hello is the plain one, byte for byte.
    assert P.Hello(1, 2, 2, 4, None, "job-7", replicas=1).encode(request_id=1) == vector("hello.hex")
    raw = bytearray(payload_of("hello_replica.hex", P.HELLO, 1))
    raw[-2] = 2  # replica_index 2 of 2
    with pytest.raises(E.MalformedFrameError, match="replica_index"):
        P.Hello.decode(raw)


def test_payload_decoders_reject_bad_fields():
    # Trailing bytes after a Hello.
    hello = bytes(payload_of("hello.hex", P.HELLO, 1)) + b"\0"
    with pytest.raises(E.MalformedFrameError, match="trailing"):
        P.Hello.decode(hello)
    # A string that is not UTF-8 (job_id "job-7" → "job-\xff").
    raw = bytearray(payload_of("hello.hex", P.HELLO, 1))
    raw[22] = 0xFF
    with pytest.raises(E.MalformedFrameError, match="UTF-8"):
        P.Hello.decode(raw)
    # A list count larger than the bytes that remain (Welcome stages count at payload offset 80).
    raw = bytearray(payload_of("welcome.hex", P.WELCOME, 1))
    struct.pack_into("<I", raw, 80, 1_000_000)
    with pytest.raises(E.MalformedFrameError, match="stages"):
        P.Welcome.decode(raw)
    # token_width 3.
    raw = bytearray(payload_of("welcome.hex", P.WELCOME, 1))
    raw[4] = 3
    with pytest.raises(E.MalformedFrameError, match="token_width"):
        P.Welcome.decode(raw)
    # Goodbye reason 2; Credit 0.
    with pytest.raises(E.MalformedFrameError, match="reason"):
        P.decode_goodbye(b"\x02\0\0\0")
    with pytest.raises(E.MalformedFrameError, match="count"):
        P.decode_credit(b"\0\0\0\0")


def test_max_batch_frame():
    # P = B·(L+1): T = ceil((120 + 36·2 + 28·16)/64)·64 = 640, plus 2·8·2 token bytes.
    assert P.max_batch_frame_size(2, 7, 2) == 640 + 32
