"""Zero-copy decoding of Batch frames (docs/PROTOCOL.md section 6.4).

A :class:`Batch` is a set of numpy views over the buffer the frame was received into: the token
block, the rows table, the pieces table and the cu_seqlens table are never copied. Derived arrays
(position ids, loss mask, varlen cu_seqlens) are computed on first use.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
from typing import TYPE_CHECKING

import numpy as np

from . import protocol as P
from .errors import MalformedFrameError

if TYPE_CHECKING:
    from .protocol import Cursor, Welcome

#: One ``Row`` (32 bytes).
ROW_DTYPE = np.dtype([
    ("sequence_index", "<u8"), ("dataset_index", "<u4"), ("stage_index", "<u4"),
    ("first_piece", "<u4"), ("piece_count", "<u4"), ("padded_tokens", "<u4"), ("epoch", "<u4"),
])
#: One ``Piece`` (24 bytes).
PIECE_DTYPE = np.dtype([
    ("shard_index", "<u4"), ("length", "<u4"), ("document_index", "<u8"), ("token_offset", "<u8"),
])
assert ROW_DTYPE.itemsize == P.ROW_SIZE and PIECE_DTYPE.itemsize == P.PIECE_SIZE

#: The Batch header after the frame header: step, rank, world_size, batch_size, sequence_length,
#: token_width, reserved0, reserved1, piece_count, token_offset, reserved2.
_BATCH_HEAD = struct.Struct("<QIIIIBBHIII")


@dataclasses.dataclass(frozen=True)
class Session:
    """What a Batch is checked against: the Welcome and the shape the client declared."""

    welcome: "Welcome"
    rank: int
    world_size: int
    batch_size: int

    @functools.cached_property
    def shard_counts(self) -> np.ndarray:
        return np.array([len(d.shard_paths) for d in self.welcome.datasets], dtype=np.int64)

    @functools.cached_property
    def stage_starts(self) -> np.ndarray:
        return np.array([s.start_token for s in self.welcome.stages], dtype=np.uint64)

    def aranges(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``np.arange(n)`` as int64 and as uint64 (cached; read-only)."""
        cache = self.__dict__.setdefault("_aranges", {})
        if n not in cache:
            a, b = np.arange(n, dtype=np.int64), np.arange(n, dtype=np.uint64)
            a.flags.writeable = b.flags.writeable = False
            cache[n] = (a, b)
        return cache[n]

    @functools.cached_property
    def max_frame_size(self) -> int:
        return P.max_batch_frame_size(self.batch_size, self.welcome.sequence_length, self.welcome.token_width)


@dataclasses.dataclass(frozen=True)
class Piece:
    """One segment of a row: a run of one document of one shard, or the row's final padding."""

    start: int
    """Offset of its first token within the row's ``L + 1`` tokens (``cu_seqlens[k]``)."""
    length: int
    shard_index: int
    """Index in the dataset's ``shard_paths``, or ``0xffffffff`` for padding."""
    shard_path: str | None
    """The shard file, relative to the daemon's data root (``None`` for padding)."""
    document_index: int
    token_offset: int
    """Offset, in tokens, of its first token within the shard's token stream."""

    @property
    def is_padding(self) -> bool:
        return self.shard_index == P.PADDING_SHARD


class Row:
    """One sequence of a batch (a view; valid as long as its batch is)."""

    def __init__(self, batch: "Batch", i: int):
        self._batch = batch
        self.index = i
        rec = batch.rows[i]
        self.sequence_index = int(rec["sequence_index"])
        self.dataset_index = int(rec["dataset_index"])
        self.stage_index = int(rec["stage_index"])
        self.epoch = int(rec["epoch"])
        self.padded_tokens = int(rec["padded_tokens"])
        self.first_piece = int(rec["first_piece"])
        self.piece_count = int(rec["piece_count"])

    @property
    def dataset(self) -> str:
        """The dataset's name."""
        return self._batch.welcome.datasets[self.dataset_index].name

    @property
    def stage(self) -> str:
        """The stage's name."""
        return self._batch.welcome.stages[self.stage_index].name

    @property
    def tokens(self) -> np.ndarray:
        """The row's ``L + 1`` tokens (a view)."""
        return self._batch.tokens[self.index]

    @property
    def cu_seqlens(self) -> np.ndarray:
        """Document boundaries within the row's ``L + 1`` tokens (int32, ``piece_count + 1`` entries)."""
        s = self.first_piece + self.index
        return self._batch.cu_table[s:s + self.piece_count + 1].astype(np.int32)

    @property
    def input_cu_seqlens(self) -> np.ndarray:
        """cu_seqlens for the row's ``L`` inputs: clipped to ``L``, a repeated final entry dropped."""
        cu = np.minimum(self.cu_seqlens, self._batch.sequence_length)
        if len(cu) >= 2 and cu[-1] == cu[-2]:
            cu = cu[:-1]
        return cu

    @property
    def position_ids(self) -> np.ndarray:
        """Position ids of the row's ``L`` inputs, restarting at 0 in every segment."""
        return self._batch.position_ids[self.index]

    @property
    def loss_mask(self) -> np.ndarray:
        """For the row's ``L`` labels: ``False`` where the label is padding (all ``True`` without padding)."""
        L = self._batch.sequence_length
        return np.arange(L) + 1 < L + 1 - self.padded_tokens

    @property
    def pieces(self) -> list[Piece]:
        """The row's provenance, in order; the last piece may be padding."""
        b = self._batch
        paths = b.welcome.datasets[self.dataset_index].shard_paths
        cu = self.cu_seqlens
        out = []
        for k in range(self.piece_count):
            p = b.pieces[self.first_piece + k]
            shard = int(p["shard_index"])
            out.append(Piece(int(cu[k]), int(p["length"]), shard,
                             None if shard == P.PADDING_SHARD else paths[shard],
                             int(p["document_index"]), int(p["token_offset"])))
        return out

    def __repr__(self) -> str:
        return (f"Row(sequence={self.sequence_index}, dataset={self.dataset!r}, stage={self.stage!r}, "
                f"epoch={self.epoch}, pieces={self.piece_count}, padded={self.padded_tokens})")


class Batch:
    """One rank's ``B`` rows of one step, decoded in place from a received Batch frame.

    All arrays are views into the receive buffer. The client never reuses a buffer that a batch, or
    an array or tensor made from it without a copy, still refers to (see :class:`tokenfeed.Client`),
    so a batch's data never changes. ``batch.copy()`` detaches a batch from the (larger) buffer.

    Attributes:
        step, rank, world_size, batch_size, sequence_length, token_width, piece_count: header fields.
        cursor: the :class:`~tokenfeed.protocol.Cursor` valid after this batch (resume from it).
        tokens: ``(B, L + 1)`` uint16/uint32 view of the token block.
        rows: structured view of the rows table (fields of :data:`ROW_DTYPE`).
        pieces: structured view of the pieces table (fields of :data:`PIECE_DTYPE`).
        cu_table: the concatenated cu_seqlens table (uint32, ``P + B`` entries).
    """

    def __init__(self, buf: np.ndarray, size: int, session: Session, *, expected_step: int | None = None):
        """Decodes and validates the Batch frame in ``buf[:size]`` (header included, already validated).

        Raises:
            MalformedFrameError naming the field and its frame offset; BadCursorError for a bad
            ``cursor_after``.
        """
        self._buf = buf
        self.welcome = session.welcome
        W, B, L, w = session.world_size, session.batch_size, session.welcome.sequence_length, session.welcome.token_width

        def fail(offset: int, field: str, problem: str) -> MalformedFrameError:
            return MalformedFrameError(f"Batch.{field} at frame offset {offset}: {problem}", f"Batch.{field}")

        if size < P.BATCH_FIXED:
            raise fail(16, "payload_length", f"frame of {size} bytes is shorter than the {P.BATCH_FIXED}-byte fixed part")
        (self.step, self.rank, self.world_size, self.batch_size, self.sequence_length, self.token_width, reserved0,
         reserved1, Pn, token_offset, reserved2) = _BATCH_HEAD.unpack_from(buf, 24)
        self.piece_count = Pn
        for off, field, got, want in ((32, "rank", self.rank, session.rank), (36, "world_size", self.world_size, W),
                                      (40, "batch_size", self.batch_size, B), (44, "sequence_length", self.sequence_length, L),
                                      (48, "token_width", self.token_width, w)):
            if got != want:
                raise fail(off, field, f"is {got}, the session's is {want}")
        for off, value in ((49, reserved0), (50, reserved1), (60, reserved2)):
            if value != 0:
                raise fail(off, "reserved", "reserved field is not 0")
        if expected_step is not None and self.step != expected_step:
            raise fail(24, "step", f"is {self.step}, expected step {expected_step} (steps are consecutive)")
        if not B <= Pn <= B * (L + 1):
            raise fail(52, "piece_count", f"{Pn} is not in {B}...{B * (L + 1)}")
        T = P.batch_token_offset(B, Pn)
        if token_offset != T:
            raise fail(56, "token_offset", f"is {token_offset}, the canonical layout puts the tokens at {T}")
        if size != T + B * (L + 1) * w:
            raise fail(16, "payload_length", f"is {size - 24}, expected {T + B * (L + 1) * w - 24} for T={T}, B={B}, L={L}, w={w}")
        self.cursor = P.Cursor.decode(buf[64:120], "Batch.cursor_after", 64)
        c = self.cursor
        if (c.next_step, c.world_size, c.batch_size, c.fingerprint) != (self.step + 1, W, B, session.welcome.fingerprint):
            raise fail(64, "cursor_after", f"next_step {c.next_step}, world_size {c.world_size}, batch_size {c.batch_size}, "
                       f"fingerprint 0x{c.fingerprint:016x} do not match step {self.step}+1, {W}, {B}, 0x{session.welcome.fingerprint:016x}")

        rows_at = P.BATCH_FIXED
        pieces_at = rows_at + P.ROW_SIZE * B
        cu_at = pieces_at + P.PIECE_SIZE * Pn
        pad_at = cu_at + 4 * (Pn + B)
        self.rows = np.frombuffer(buf, ROW_DTYPE, B, offset=rows_at)
        self.pieces = np.frombuffer(buf, PIECE_DTYPE, Pn, offset=pieces_at)
        self.cu_table = np.frombuffer(buf, "<u4", Pn + B, offset=cu_at)
        dtype = "<u2" if w == 2 else "<u4"
        self.tokens = np.frombuffer(buf, dtype, B * (L + 1), offset=T).reshape(B, L + 1)
        for a in (self.rows, self.pieces, self.cu_table):
            a.flags.writeable = False

        first_seq = self.step * W * B + self.rank * B
        if pad_at < T and buf[pad_at:T].any():
            raise fail(pad_at, "padding", "bytes between the metadata and the token block are not zero")
        if not self._tables_valid(buf, session, first_seq, rows_at, pieces_at, cu_at):
            self._check_tables(buf, session, first_seq, rows_at, pieces_at, cu_at, fail)

    def _tables_valid(self, buf, session: Session, first_seq: int, rows_at: int, pieces_at: int, cu_at: int) -> bool:
        """Whether the rows, pieces and cu_seqlens tables are valid (the common case, few whole-array
        operations). ``False`` sends the frame through :meth:`_check_tables`, which names what is wrong;
        batches with padding always go there."""
        B, L, Pn = self.batch_size, self.sequence_length, self.piece_count
        r32 = np.frombuffer(buf, "<u4", 8 * B, offset=rows_at).reshape(B, 8)
        seq = np.frombuffer(buf, "<u8", 4 * B, offset=rows_at)[::4]
        ar = session.aranges(B)
        if not (seq - np.uint64(first_seq) == ar[1]).all():
            return False
        ds, st, fp, n, padded = r32[:, 2], r32[:, 3], r32[:, 4], r32[:, 5], r32[:, 6]
        counts = session.shard_counts
        if int(ds.max()) >= len(counts) or padded.any() or int(n.min()) < 1:
            return False
        if not (st == np.searchsorted(session.stage_starts, seq * np.uint64(L), side="right") - 1).all():
            return False
        cs = np.cumsum(n, dtype=np.int64)
        if int(cs[-1]) != Pn or not (fp == cs - n).all():
            return False
        p32 = np.frombuffer(buf, "<u4", 6 * Pn, offset=pieces_at).reshape(Pn, 6)
        shard, length = p32[:, 0], p32[:, 1]
        row_of = np.repeat(ar[0], n)
        if len(counts) == 1:
            if int(shard.max()) >= int(counts[0]):  # also rejects padding (0xffffffff)
                return False
        elif (shard >= counts[ds][row_of]).any():
            return False
        if int(length.min()) < 1:
            return False
        # cu_seqlens: 0 at each row's start, then the running sum of the row's piece lengths, ending at L + 1.
        cu = np.frombuffer(buf, "<u4", Pn + B, offset=cu_at)
        total = np.cumsum(length, dtype=np.int64)
        idx = np.arange(Pn) + row_of
        if (cu[fp + ar[0]].any() or not (total[cs - 1] == (L + 1) * (ar[0] + 1)).all()
                or not (cu[idx + 1] == total - (L + 1) * row_of).all()):
            return False
        self._row_of_piece = row_of
        self._cu_index = idx
        return True

    def _check_tables(self, buf, session: Session, first_seq: int, rows_at: int, pieces_at: int, cu_at: int, fail) -> None:
        """Checks the rows, pieces and cu_seqlens tables one rule at a time.

        Raises:
            MalformedFrameError naming the first violated field and its frame offset.
        """
        B, L, Pn = self.batch_size, self.sequence_length, self.piece_count
        # Rows.
        rows = self.rows
        i = np.arange(B, dtype=np.uint64)

        def first_bad(mask: np.ndarray) -> int | None:
            if not mask.any():
                return None
            return int(np.argmax(mask))

        k = first_bad(rows["sequence_index"] != np.uint64(first_seq) + i)
        if k is not None:
            raise fail(rows_at + 32 * k, f"rows[{k}].sequence_index",
                       f"is {int(rows['sequence_index'][k])}, expected s·W·B + r·B + i = {first_seq + k}")
        ds = rows["dataset_index"].astype(np.int64)
        k = first_bad(ds >= len(self.welcome.datasets))
        if k is not None:
            raise fail(rows_at + 32 * k + 8, f"rows[{k}].dataset_index", f"{ds[k]} is not below the dataset count {len(self.welcome.datasets)}")
        st = rows["stage_index"].astype(np.int64)
        expected_stage = np.searchsorted(session.stage_starts, rows["sequence_index"] * np.uint64(L), side="right").astype(np.int64) - 1
        k = first_bad(st != expected_stage)
        if k is not None:
            raise fail(rows_at + 32 * k + 12, f"rows[{k}].stage_index",
                       f"is {st[k]}, but sequence {int(rows['sequence_index'][k])} (token {int(rows['sequence_index'][k]) * L}) is in stage {expected_stage[k]}")
        n = rows["piece_count"].astype(np.int64)
        k = first_bad(n < 1)
        if k is not None:
            raise fail(rows_at + 32 * k + 20, f"rows[{k}].piece_count", "must be at least 1")
        fp = rows["first_piece"].astype(np.int64)
        expected_first = np.concatenate(([0], np.cumsum(n)[:-1]))
        k = first_bad(fp != expected_first)
        if k is not None:
            raise fail(rows_at + 32 * k + 16, f"rows[{k}].first_piece", f"is {fp[k]}, expected {expected_first[k]} (pieces are consecutive)")
        if int(n.sum()) != Pn:
            raise fail(52, "piece_count", f"is {Pn} but the rows' piece counts add up to {int(n.sum())}")

        # Pieces.
        pcs = self.pieces
        row_of = np.repeat(np.arange(B), n)
        shard = pcs["shard_index"].astype(np.int64)
        length = pcs["length"].astype(np.int64)
        is_pad = shard == P.PADDING_SHARD
        last = fp + n - 1
        is_last = np.zeros(Pn, dtype=bool)
        is_last[last] = True
        k = first_bad(length < 1)
        if k is not None:
            raise fail(pieces_at + 24 * k + 4, f"pieces[{k}].length", "must be at least 1")
        k = first_bad(is_pad & ~is_last)
        if k is not None:
            raise fail(pieces_at + 24 * k, f"pieces[{k}].shard_index", "padding piece that is not the last piece of its row")
        k = first_bad(is_pad & ((pcs["document_index"] != 0) | (pcs["token_offset"] != 0)))
        if k is not None:
            raise fail(pieces_at + 24 * k + 8, f"pieces[{k}]", "padding piece with a non-zero document or offset")
        k = first_bad(~is_pad & (shard >= session.shard_counts[ds[row_of]]))
        if k is not None:
            raise fail(pieces_at + 24 * k, f"pieces[{k}].shard_index",
                       f"{shard[k]} is not below the shard count {session.shard_counts[ds[row_of[k]]]} of dataset {ds[row_of[k]]}")
        padded = rows["padded_tokens"].astype(np.int64)
        expected_pad = np.where(is_pad[last], length[last], 0)
        k = first_bad(padded != expected_pad)
        if k is not None:
            raise fail(rows_at + 32 * k + 24, f"rows[{k}].padded_tokens",
                       f"is {padded[k]}, but the row's padding piece has {expected_pad[k]} tokens")

        # cu_seqlens.
        cu = self.cu_table.astype(np.int64)
        idx = np.arange(Pn) + row_of
        k = first_bad(cu[idx + 1] - cu[idx] != length)
        if k is not None:
            raise fail(cu_at + 4 * (idx[k] + 1), f"cu_seqlens[{idx[k] + 1}]",
                       f"piece {k} has length {length[k]} but its cu_seqlens entries are {cu[idx[k]]} and {cu[idx[k] + 1]}")
        starts = fp + np.arange(B)
        k = first_bad(cu[starts] != 0)
        if k is not None:
            raise fail(cu_at + 4 * starts[k], f"cu_seqlens[{starts[k]}]", f"row {k}'s first entry is {cu[starts[k]]}, must be 0")
        k = first_bad(cu[starts + n] != L + 1)
        if k is not None:
            raise fail(cu_at + 4 * (starts[k] + n[k]), f"cu_seqlens[{starts[k] + n[k]}]",
                       f"row {k}'s last entry is {cu[starts[k] + n[k]]}, must be L + 1 = {L + 1}")
        self._row_of_piece = row_of
        self._cu_index = idx

    # -- lifetime --------------------------------------------------------------------------------

    @property
    def valid(self) -> bool:
        """Always ``True``: a buffer a live batch refers to is never reused (kept for older callers)."""
        return True

    def copy(self) -> "Batch":
        """A batch over a private copy of the frame, valid for ever."""
        size = P.batch_token_offset(self.batch_size, self.piece_count) + self.tokens.nbytes
        buf = np.array(self._buf[:size], copy=True)
        session = Session(self.welcome, self.rank, self.world_size, self.batch_size)
        return Batch(buf, size, session)

    # -- training views --------------------------------------------------------------------------

    @property
    def inputs(self) -> np.ndarray:
        """``tokens[:, :-1]``: the ``(B, L)`` inputs (a view)."""
        return self.tokens[:, :-1]

    @property
    def labels(self) -> np.ndarray:
        """``tokens[:, 1:]``: the ``(B, L)`` labels (a view)."""
        return self.tokens[:, 1:]

    @functools.cached_property
    def position_ids(self) -> np.ndarray:
        """``(B, L)`` int64 position ids of the inputs, restarting at 0 in every segment."""
        L = self.sequence_length
        starts = self.cu_table[self._cu_index].astype(np.int64)
        flat = np.tile(np.arange(L + 1, dtype=np.int64), self.batch_size) - np.repeat(starts, self.pieces["length"])
        return flat.reshape(self.batch_size, L + 1)[:, :L]

    @functools.cached_property
    def loss_mask(self) -> np.ndarray:
        """``(B, L)`` bool mask of the labels, ``False`` on padding (all ``True`` when nothing is padded)."""
        padded = self.rows["padded_tokens"].astype(np.int64)
        L = self.sequence_length
        return (np.arange(L)[None, :] + 1) < (L + 1 - padded)[:, None]

    def varlen_cu_seqlens(self) -> tuple[np.ndarray, int]:
        """cu_seqlens over the flattened ``B·L`` inputs (int32) and the longest segment, for
        variable-length attention kernels (e.g. ``flash_attn_varlen_func``)."""
        L = self.sequence_length
        cu = self.cu_table.astype(np.int64)
        start = cu[self._cu_index]
        end = np.minimum(cu[self._cu_index + 1], L)
        keep = start < L
        ends = self._row_of_piece[keep] * L + end[keep]
        out = np.concatenate(([0], ends)).astype(np.int32)
        return out, int(np.diff(out).max())

    # -- metadata ----------------------------------------------------------------------------------

    def row(self, i: int) -> Row:
        """Row ``i`` with its metadata and provenance."""
        if not 0 <= i < self.batch_size:
            raise IndexError(f"row {i} of a batch of {self.batch_size}")
        return Row(self, i)

    def __iter__(self):
        return (Row(self, i) for i in range(self.batch_size))

    def __len__(self) -> int:
        return self.batch_size

    @property
    def sequence_indices(self) -> np.ndarray:
        return self.rows["sequence_index"]

    @property
    def dataset_indices(self) -> np.ndarray:
        return self.rows["dataset_index"]

    @property
    def stage_indices(self) -> np.ndarray:
        return self.rows["stage_index"]

    @property
    def epochs(self) -> np.ndarray:
        return self.rows["epoch"]

    @property
    def padded_tokens(self) -> np.ndarray:
        return self.rows["padded_tokens"]

    def __repr__(self) -> str:
        return (f"Batch(step={self.step}, rank={self.rank}, rows={self.batch_size}, L={self.sequence_length}, "
                f"pieces={self.piece_count})")
