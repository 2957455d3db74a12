"""The Python client against a real tokenfeedd on a real socket, serving shards imported from the
repository's corpus fixture; every served token is checked against the shard files through
tokenfeed.shards. Skipped when the binaries are not built."""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from conftest import END_TOKEN, SEQUENCE_LENGTH, STAGE_BOUNDARY, WEIGHTS
from reference import ShardSet, check_row_against_shards, check_training_views, copy_rows

import tokenfeed
from tokenfeed import errors as E
from tokenfeed import protocol as P

L = SEQUENCE_LENGTH
TOTAL_SEQUENCES = END_TOKEN // L  # 3125
FIRST_DECAY_SEQUENCE = math.ceil(STAGE_BOUNDARY / L)  # 157: the first i with i·L ≥ 10,000
TIMEOUT = 30


def client(daemon, rank, world_size, batch_size, job, **kw) -> tokenfeed.Client:
    return tokenfeed.Client(daemon.socket, rank, world_size, batch_size, job_id=job, timeout=TIMEOUT, **kw)


def read(c: tokenfeed.Client, n: int) -> list:
    rows = []
    for _ in range(n):
        b = c.next()
        assert b is not None
        check_training_views(b)
        rows += copy_rows(b)
    return rows


def same_rows(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert (x.sequence, x.dataset, x.stage, x.epoch, x.padded) == (y.sequence, y.dataset, y.stage, y.epoch, y.padded)
        assert np.array_equal(x.tokens, y.tokens) and np.array_equal(x.cu, y.cu) and x.pieces == y.pieces


# -- the whole stream ---------------------------------------------------------------------------------


def test_whole_stream_two_ranks_matches_shards_and_curriculum(daemon, data_root):
    W, B = 2, 4
    ranks = [client(daemon, r, W, B, "whole") for r in range(W)]
    welcome = ranks[0].welcome
    assert ranks[1].welcome == welcome
    assert welcome.sequence_length == L and welcome.token_width == 4 and welcome.vocabulary_size == 128256
    assert [s.name for s in welcome.stages] == ["stable", "decay"]
    assert [(s.start_token, s.end_token) for s in welcome.stages] == [(0, STAGE_BOUNDARY), (STAGE_BOUNDARY, END_TOKEN)]
    assert [d.name for d in welcome.datasets] == ["web", "synth"]
    assert welcome.datasets[0].shard_paths == ("web/part_00000.zst", "web/part_00001.zst")
    assert welcome.start_cursor == P.Cursor(welcome.fingerprint, 0, 0, W, B)

    seen = {}
    steps = [0, 0]
    ended = [False, False]
    while not all(ended):  # interleave the ranks: no barrier between them
        for r, c in enumerate(ranks):
            if ended[r]:
                continue
            b = c.next()
            if b is None:
                ended[r] = True
                continue
            assert (b.step, b.rank) == (steps[r], r)
            assert b.cursor == P.Cursor(welcome.fingerprint, b.step + 1, (b.step + 1) * W * B, W, B)
            assert b.tokens.dtype == np.uint32 and b.tokens.shape == (B, L + 1)
            check_training_views(b)
            for row in copy_rows(b):
                assert row.sequence not in seen
                seen[row.sequence] = row
            steps[r] += 1
    last_step = TOTAL_SEQUENCES // (W * B)  # 390 whole steps
    assert steps == [last_step, last_step]
    assert sorted(seen) == list(range(last_step * W * B)), "ranks are disjoint and cover every sequence"
    assert all(c.ended for c in ranks)
    assert ranks[0].cursor.next_step == last_step

    shards = ShardSet(data_root, welcome)
    for row in seen.values():
        check_row_against_shards(row, shards, L)

    # Stages switch at the first sequence whose first token is at or past the boundary.
    for i, row in seen.items():
        assert row.stage == (0 if i < FIRST_DECAY_SEQUENCE else 1), f"sequence {i}"

    # Concat packing: a dataset's k-th sequence reads tokens [k·L, k·L + L + 1) of its stream, which is
    # its epochs back to back (a row may run from one epoch into the next; its epoch is that of its
    # first token). Epoch 0 takes the shards in file-name order; web has two shards and never wraps.
    ordinal = [0, 0]
    for i in sorted(seen):
        row = seen[i]
        d = row.dataset
        epoch_tokens = shards.stream_length(d)
        starts = np.cumsum([0] + [shards.shard(d, s).token_count for s in range(len(welcome.datasets[d].shard_paths))])
        g = ordinal[d] * L
        assert row.epoch == g // epoch_tokens, f"sequence {i}"
        for shard_index, _, offset, length in row.pieces:
            epoch, within = divmod(g, epoch_tokens)
            if epoch > 0 and len(starts) > 2:
                break  # later epochs permute the shards (seeded); not recomputed here
            s = int(np.searchsorted(starts, within, side="right")) - 1
            assert (shard_index, offset) == (s, within - starts[s]), f"sequence {i}: dataset {d} ordinal {ordinal[d]}"
            assert within + length <= starts[s + 1], "a piece does not cross a shard end"
            g += length
        ordinal[d] += 1
    assert max(r.epoch for r in seen.values() if r.dataset == 1) >= 1, "synth wraps to a second epoch"
    assert any(r.epoch == 0 and r.pieces[-1][2] == 0 for r in seen.values() if r.dataset == 1), \
        "a row runs from the end of epoch 0 into epoch 1"

    # Mixing: within a stage every prefix of n sequences holds c_d with |c_d − w_d·n| ≤ 1/2 (k = 2).
    for stage, (lo, hi) in enumerate([(0, FIRST_DECAY_SEQUENCE), (FIRST_DECAY_SEQUENCE, last_step * W * B)]):
        counts = {0: 0, 1: 0}
        weights = [WEIGHTS[stage]["web"], WEIGHTS[stage]["synth"]]
        for n, i in enumerate(range(lo, hi), start=1):
            counts[seen[i].dataset] += 1
            for d in (0, 1):
                assert abs(counts[d] - weights[d] * n) <= 0.5 + 1e-9, f"stage {stage}, prefix {n}"
    for c in ranks:
        c.close()


def test_stage_switch_inside_one_batch(daemon):
    """A cursor built by hand (step 52 of shape 1 × 3 = sequence 156) gives rows 156, 157, 158: the
    batch straddles the boundary at token 10,000."""
    with client(daemon, 0, 1, 1, "probe") as probe:
        fp = probe.welcome.fingerprint
    with client(daemon, 0, 1, 3, "straddle", cursor=P.Cursor(fp, 52, 156, 1, 3)) as c:
        assert c.welcome.start_cursor.next_sequence == 156
        b = c.next()
        assert b.step == 52
        assert b.sequence_indices.tolist() == [156, 157, 158]
        assert b.stage_indices.tolist() == [0, 1, 1]
        assert [r.stage for r in b] == ["stable", "decay", "decay"]
        assert 156 * L < STAGE_BOUNDARY <= 157 * L


# -- resume -------------------------------------------------------------------------------------------


def test_resume_matches_uninterrupted_run(daemon):
    W, B, N, M = 2, 4, 10, 4
    reference = {}
    for r in range(W):
        with client(daemon, r, W, B, "resume-ref") as c:
            reference[r] = read(c, N)

    resumed = {r: [] for r in range(W)}
    cursors = []
    for r in range(W):
        with client(daemon, r, W, B, "resume-a", credits=2) as c:
            resumed[r] += read(c, M)
            cursors.append(c.cursor)
    assert cursors[0] == cursors[1], "every rank gets the same global cursor"
    assert cursors[0].next_step == M
    # Resume from the text form on one rank and the bytes on the other; then resume the resumed run.
    text, raw = str(cursors[0]), bytes(cursors[0])
    assert text.startswith("tfc1-") and len(raw) == 56
    second = []
    for r, form in ((0, text), (1, raw)):
        with client(daemon, r, W, B, "resume-b", cursor=form) as c:
            assert c.welcome.start_cursor == cursors[0]
            resumed[r] += read(c, 3)
            second.append(c.cursor)
    for r in range(W):
        with client(daemon, r, W, B, "resume-c", cursor=second[r]) as c:
            resumed[r] += read(c, N - M - 3)
    for r in range(W):
        same_rows(resumed[r], reference[r])

    # Another shape with the same global batch (1 × 8) continues the same global order.
    with client(daemon, 0, 1, W * B, "resume-reshape", cursor=cursors[0]) as c:
        assert c.welcome.start_cursor.next_step == M and c.welcome.start_cursor.next_sequence == M * W * B
        rows = read(c, 2)
    by_sequence = {row.sequence: row for r in range(W) for row in reference[r]}
    for row in rows:
        ref = by_sequence[row.sequence]
        assert np.array_equal(row.tokens, ref.tokens) and row.pieces == ref.pieces


def test_kept_batches_never_change(daemon):
    """A batch (or a view of it) kept past any number of fetches still holds its own data."""
    with client(daemon, 0, 1, 2, "lifetime", credits=3) as c:
        first = c.next()
        kept = np.array(first.tokens, copy=True)
        inputs_view = c.next().inputs          # only a view survives of the second batch
        inputs_kept = np.array(inputs_view, copy=True)
        detached = first.copy()
        later = [c.next().step for _ in range(3 * 3)]  # far more than `credits` fetches
        assert later == list(range(2, 11))
        assert first.valid and np.array_equal(first.tokens, kept) and first.step == 0
        assert np.array_equal(inputs_view, inputs_kept)
        assert detached.valid and np.array_equal(detached.tokens, kept) and detached.step == 0


def test_buffers_are_reused_once_released(daemon):
    """Released batches give their buffers back: the pool stays at credits + a few buffers."""
    with client(daemon, 0, 1, 2, "reuse", credits=2) as c:
        for _ in range(20):
            batch = c.next()
            assert batch is not None
        del batch
        assert len(c._buffers) <= 2 + 2
        kept = [c.next() for _ in range(6)]
        assert c._buffers.in_use >= 6
        assert len({b.tokens.ctypes.data for b in kept}) == 6, "each kept batch has its own buffer"


# -- dump ----------------------------------------------------------------------------------------------


def test_dump_socket_json_agrees_with_python_client(daemon, data_root, tokenfeed_bin, tmp_path):
    W, B, K = 2, 4, 3
    for r in range(W):
        cursor_file = tmp_path / f"cursor{r}.txt"
        proc = subprocess.run(
            [tokenfeed_bin, "dump", "--socket", daemon.socket, "--rank", str(r), "--world-size", str(W),
             "--batch-size", str(B), "--count", str(K), "--json", "--cursor-out", str(cursor_file)],
            capture_output=True, text=True, timeout=TIMEOUT)
        if proc.returncode != 0 and "--socket" in proc.stderr and "Unknown option" in proc.stderr:
            pytest.skip("tokenfeed dump has no --socket option yet")
        assert proc.returncode == 0, proc.stderr
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        assert len(lines) == K * B
        with client(daemon, r, W, B, "dump-compare") as c:
            welcome = c.welcome
            for step in range(K):
                b = c.next()
                for i, row in enumerate(b):
                    j = lines[step * B + i]
                    assert (j["step"], j["rank"], j["sequence"]) == (b.step, r, row.sequence_index)
                    assert (j["stage"], j["dataset"], j["epoch"]) == (row.stage, row.dataset, row.epoch)
                    assert j["tokens"] == row.tokens.tolist()
                    assert j["cu_seqlens"] == row.cu_seqlens.tolist()
                    assert ("loss_mask" in j) == (row.padded_tokens > 0)
                    pieces = [p for p in row.pieces if not p.is_padding]
                    assert j["provenance"] == [{"shard": p.shard_path, "document": p.document_index,
                                                "offset": p.token_offset, "length": p.length} for p in pieces]
            assert P.Cursor.from_text(cursor_file.read_text()) == c.cursor
            assert c.cursor == P.Cursor(welcome.fingerprint, K, K * W * B, W, B)


# -- several clients, stats ------------------------------------------------------------------------------


def test_ranks_are_independent_and_stats_lists_them(daemon):
    W, B = 4, 2
    idle = [client(daemon, r, W, B, "independent", credits=2) for r in range(1, W)]
    with client(daemon, 0, W, B, "independent") as busy:
        for step in range(40):  # ranks 1-3 never ask for a batch: rank 0 is not held back
            assert busy.next().step == step
        stats = tokenfeed.fetch_stats(daemon.socket, timeout=TIMEOUT)
        assert stats.sequence_length == L
        assert [s.name for s in stats.stages] == ["stable", "decay"]
        assert [d.name for d in stats.datasets] == ["web", "synth"]
        mine = {c.rank: c for c in stats.clients if c.job_id == "independent"}
        assert sorted(mine) == [0, 1, 2, 3]
        assert all((c.world_size, c.batch_size) == (W, B) for c in mine.values())
        assert mine[0].next_step >= 40 and mine[0].batches_sent >= 40
        assert all(mine[r].next_step <= 2 and mine[r].batches_sent <= 2 for r in (1, 2, 3)), "two credits each"
    for r, c in enumerate(idle, start=1):
        b = c.next()
        assert (b.step, b.rank) == (0, r)
        assert b.sequence_indices.tolist() == [r * B, r * B + 1]
        c.close()


def test_ranks_in_threads_cover_the_stream_once(daemon, data_root):
    """Four ranks, each in its own thread with its own connection, at once."""
    import threading

    W, B, STEPS = 4, 3, 40
    rows: dict[int, list] = {}
    failures: list[BaseException] = []

    def rank_main(r: int) -> None:
        try:
            with client(daemon, r, W, B, "threads", credits=2 + r) as c:
                rows[r] = read(c, STEPS)
        except BaseException as e:  # reported below
            failures.append(e)

    threads = [threading.Thread(target=rank_main, args=(r,)) for r in range(W)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=4 * TIMEOUT)
    assert not any(t.is_alive() for t in threads) and not failures, failures
    seen = sorted(row.sequence for r in range(W) for row in rows[r])
    assert seen == list(range(STEPS * W * B))
    with client(daemon, 0, 1, 1, "threads-probe") as probe:
        shards = ShardSet(data_root, probe.welcome)
    for r in range(W):
        for row in rows[r]:
            assert row.rank == r and row.sequence == row.step * W * B + r * B + (row.sequence % B)
            check_row_against_shards(row, shards, L)


# -- errors --------------------------------------------------------------------------------------------


def raw_exchange(path: str, data: bytes) -> tuple[P.FrameHeader, bytes] | None:
    """Sends ``data`` and returns the first frame the daemon answers with (None if it just closes)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect(path)
    try:
        s.sendall(data)
        buf = b""
        while len(buf) < 24:
            chunk = s.recv(65536)
            if not chunk:
                return None
            buf += chunk
        header = P.decode_header(buf[:24])
        while len(buf) < 24 + header.payload_length:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("daemon closed in the middle of its answer")
            buf += chunk
        payload = buf[24:24 + header.payload_length]
        # The daemon closes after an Error.
        if header.type == P.ERROR:
            try:
                rest = s.recv(1)
            except ConnectionResetError:  # closed with our unread bytes in its queue
                rest = b""
            assert rest == b"", "the daemon closes the connection after an Error frame"
        return header, payload
    finally:
        s.close()


def expect_error(path: str, data: bytes, code: int, request_id: int | None = None) -> P.ErrorMessage:
    answer = raw_exchange(path, data)
    assert answer is not None, "expected an Error frame"
    header, payload = answer
    assert header.type == P.ERROR
    if request_id is not None:
        assert header.request_id == request_id
    err = P.ErrorMessage.decode(payload)
    assert err.code == code, err
    return err


def test_replicas_receive_every_batch_and_resume_by_the_ranks_cursor(daemon):
    """Two tensor-parallel replicas of data-parallel rank 1 each receive every batch of the rank, from
    one session; mismatched Hellos are refused naming the field; when one leaves the other gets
    replica_lost; the pair resumes from the rank's cursor."""
    W, B = 2, 3
    with client(daemon, 1, W, B, "tp-ref") as c:
        reference = read(c, 6)
    a = client(daemon, 1, W, B, "tp", replicas=2, replica_index=0, credits=2)
    b = client(daemon, 1, W, B, "tp", replicas=2, replica_index=1, credits=3)
    same_rows(read(a, 4), reference[:4 * B])
    same_rows(read(b, 4), reference[:4 * B])
    assert a.cursor == b.cursor and a.cursor.next_step == 4
    with pytest.raises(E.JobMismatchError) as info:
        client(daemon, 1, W, B, "tp", replicas=3, replica_index=2)
    assert info.value.detail == "Hello.replicas"
    with pytest.raises(E.RankInUseError) as info:
        client(daemon, 1, W, B, "tp", replicas=2, replica_index=1)
    assert info.value.detail == "Hello.replica_index"
    with pytest.raises(E.JobMismatchError) as info:  # a rank without replicas
        client(daemon, 1, W, B, "tp")
    assert info.value.detail == "Hello.replicas"
    cursor = a.cursor
    b.close()
    with pytest.raises(E.ReplicaLostError) as info:
        for _ in range(200):  # batches already sent to it come first
            assert a.next() is not None
    assert info.value.remote
    a.close()
    a2 = client(daemon, 1, W, B, "tp", replicas=2, replica_index=0, cursor=cursor)
    b2 = client(daemon, 1, W, B, "tp", replicas=2, replica_index=1, cursor=cursor)
    same_rows(read(b2, 2), reference[4 * B:])
    same_rows(read(a2, 2), reference[4 * B:])
    a2.close()
    b2.close()


def test_handshake_errors_are_typed(daemon):
    with client(daemon, 0, 2, 4, "errors"):
        with pytest.raises(E.JobMismatchError) as info:
            client(daemon, 1, 4, 4, "errors")
        assert info.value.code == 7 and info.value.remote
        with pytest.raises(E.RankInUseError):
            client(daemon, 0, 2, 4, "errors")
    with client(daemon, 0, 1, 1, "errors-probe") as probe:
        fp = probe.welcome.fingerprint
    with pytest.raises(E.CursorFingerprintMismatchError):
        client(daemon, 0, 1, 1, "errors-fp", cursor=P.Cursor(fp ^ 1, 0, 0, 1, 1))
    with pytest.raises(E.BadCursorError) as info:  # sequence 3 is not a step boundary of 2 × 4
        client(daemon, 0, 2, 4, "errors-boundary", cursor=P.Cursor(fp, 1, 3, 1, 3))
    assert info.value.remote
    # Checks the Python client cannot send: rank ≥ world_size, a cursor with a bad CRC.
    expect_error(daemon.socket, P.Hello(2, 2, 1, 1, job_id="errors-raw").encode(5), 8)
    expect_error(daemon.socket, hello_with_bad_cursor_crc(fp, 6), 11)


def hello_with_bad_cursor_crc(fingerprint: int, request_id: int) -> bytes:
    hello = bytearray(P.Hello(0, 1, 1, 1, P.Cursor(fingerprint, 0, 0, 1, 1), "errors-raw2").encode(request_id))
    hello[24 + 18 + 52] ^= 0xFF  # the cursor's CRC
    return bytes(hello)


def test_hello_errors_carry_the_hello_request_id(daemon):
    with client(daemon, 0, 1, 1, "errors-probe2") as probe:
        fp = probe.welcome.fingerprint
    expect_error(daemon.socket, P.Hello(2, 2, 1, 1, job_id="errors-raw").encode(5), 8, request_id=5)
    expect_error(daemon.socket, hello_with_bad_cursor_crc(fp, 6), 11, request_id=6)


def test_garbage_gets_typed_errors_and_others_are_unaffected(daemon):
    with client(daemon, 0, 1, 1, "bystander") as bystander:
        assert bystander.next().step == 0
        expect_error(daemon.socket, b"GARBAGE!" * 8, 1)  # bad_magic
        header = bytearray(P.encode_credit(1))
        struct.pack_into("<H", header, 4, 2)
        expect_error(daemon.socket, bytes(header), 2)  # unsupported_version
        struct.pack_into("<H", header, 4, 1)
        struct.pack_into("<H", header, 6, 42)
        expect_error(daemon.socket, bytes(header), 5)  # unknown_message_type
        expect_error(daemon.socket, P.encode_credit(1), 6)  # Credit before Hello: unexpected_message
        big = P.FrameHeader(P.HELLO, 1, 5000).encode()
        expect_error(daemon.socket, big, 4)  # oversize_frame
        hello = P.Hello(0, 1, 1, 1, job_id="x").encode(1)
        expect_error(daemon.socket, hello[:-1] + b"\x01", 3)  # auth_token length runs past the payload
        # A client that vanishes in the middle of a frame.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(daemon.socket)
        s.sendall(hello[:30])
        s.close()
        # A client that closes in the middle of receiving a batch.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(TIMEOUT)
        s.connect(daemon.socket)
        s.sendall(P.Hello(0, 1, 1, 4, job_id="vanish").encode(1))
        s.recv(100)
        s.close()
        assert bystander.next().step == 1
        assert daemon.alive()
    with client(daemon, 0, 1, 1, "after-garbage") as c:
        assert c.next().step == 0


def test_shutdown_reaches_clients_as_shutting_down(start_daemon):
    d = start_daemon()
    c = tokenfeed.Client(d.socket, 0, 1, 2, timeout=TIMEOUT)
    assert c.next().step == 0
    d.signal(signal.SIGTERM)
    deadline = time.monotonic() + TIMEOUT
    with pytest.raises(E.ShuttingDownError) as info:
        while time.monotonic() < deadline:
            c.next()  # batches already in flight come first, then the Error
    assert info.value.remote and info.value.code == 15
    d.proc.wait(timeout=TIMEOUT)
    assert d.proc.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to run a client as another local user")
def test_another_user_gets_auth_failed(start_daemon):
    """A client run as nobody (65534) is refused with AuthFailedError before any data, and the daemon
    logs the refusal; the first write failing (the daemon closed first) does not hide the Error."""
    folder = tempfile.mkdtemp(prefix="tfauth")
    os.chmod(folder, 0o755)  # nobody must reach the socket; its mode (0666) lets it connect
    try:
        d = start_daemon(extra=["--socket-mode", "0666"], socket=folder + "/s.sock")
        # The child needs only the standard library (this client's numpy may not be readable by nobody):
        # it connects, sends a StatsRequest as the client would (the write may fail: the daemon closed
        # first) and prints what it could read.
        code = ("import socket, sys\n"
                "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
                "try:\n    s.sendall(bytes.fromhex(sys.argv[2]))\nexcept OSError:\n    pass\n"
                "data = b''\n"
                "try:\n    while chunk := s.recv(65536):\n        data += chunk\n"
                "except ConnectionResetError:\n    pass\n"  # the daemon closed with our frame unread: after its data
                "print(data.hex())\n")
        out = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                              sys.executable, "-S", "-c", code, d.socket, P.encode_stats_request(1).hex()],
                             capture_output=True, text=True, timeout=60)
        data = bytes.fromhex(out.stdout.strip())
        assert len(data) >= 24, out.stderr
        header = P.decode_header(data[:24])
        assert header.type == P.ERROR and header.request_id == 0
        err = P.ErrorMessage.decode(data[24:24 + header.payload_length])
        assert len(data) == 24 + header.payload_length, "the Error is the only frame"
        mapped = E.error_for_code(err.code, err.message, err.detail, remote=True)
        assert isinstance(mapped, E.AuthFailedError) and "65534" in err.message
        assert "peer not allowed" in d.log() and "uid=65534" in d.log()
        assert tokenfeed.fetch_stats(d.socket, timeout=TIMEOUT).current_stage == 0  # root is still served
        d.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_connect_to_missing_socket(tmp_path):
    with pytest.raises(E.ConnectionClosedError, match="cannot connect"):
        tokenfeed.Client(str(tmp_path / "nothing.sock"), 0, 1, 1, timeout=5)


# -- bestfit packing: padding and the loss mask ----------------------------------------------------------


def test_bestfit_padding_loss_mask_and_provenance(start_daemon, data_root):
    text = (data_root / "curriculum.yaml").read_text().replace(
        "seed: 3\n", "seed: 3\npacking: {mode: bestfit, pad_token: 128004, lookahead: 16}\n")
    curriculum = data_root / "bestfit.yaml"
    curriculum.write_text(text)
    d = start_daemon(curriculum)
    padded_rows = 0
    with tokenfeed.Client(d.socket, 0, 1, 4, timeout=TIMEOUT) as c:
        shards = ShardSet(data_root, c.welcome)
        for step in range(150):
            b = c.next()
            check_training_views(b)
            for row in copy_rows(b):
                check_row_against_shards(row, shards, L)
            if b.padded_tokens.any():
                padded_rows += int((b.padded_tokens > 0).sum())
                for i, row in enumerate(b):
                    if row.padded_tokens:
                        last = row.pieces[-1]
                        assert last.is_padding and last.length == row.padded_tokens
                        assert last.start == L + 1 - row.padded_tokens
                        assert not b.loss_mask[i, L - row.padded_tokens:].any()
                        assert b.loss_mask[i, :L - row.padded_tokens].all()
                    else:
                        assert b.loss_mask[i].all()
    assert padded_rows > 0, "bestfit packing padded some rows in 600"
