"""Bulk conversion of a received :class:`~tokenfeed.Batch` into torch tensors, into reused buffers.

Per batch, every array is written with a handful of numpy calls over whole arrays (C speed, no
per-row Python): the uint16/uint32 tokens are cast into int64 (or int32) buffers, position ids and
the loss mask are computed in place. The buffers are reused, and pinned when asked (so a
``.to(device, non_blocking=True)`` really is asynchronous), but a buffer set is reused only when
nothing outside the converter refers to it any more — no yielded tensor, no view of one, no numpy
array made from one, and (with a device) no copy to the device still in flight. A batch you keep
therefore never changes under you; the converter allocates another buffer set instead.
"""

from __future__ import annotations

import dataclasses
import logging
import sys

import numpy as np
import torch

from ..batch import Batch
from ..protocol import Cursor

log = logging.getLogger("tokenfeed")

#: The fields a :class:`TensorConverter` can compute (a key map asks for the ones it uses).
FIELDS = frozenset({"input_ids", "labels", "hf_labels", "position_ids", "loss_mask", "cu_seqlens"})

_IGNORE_INDEX = -100


@dataclasses.dataclass
class TensorBatch:
    """One converted batch: ``(B, L)`` tensors (those the converter was asked for; others ``None``).

    Attributes:
        input_ids: ``tokens[:, :-1]`` as int64 (or the requested dtype).
        labels: ``tokens[:, 1:]`` (already shifted: ``labels[:, t]`` is the target of ``input_ids[:, t]``).
        hf_labels: Hugging Face's convention: ``input_ids`` with ``-100`` where the label of the
            previous position is masked and in column 0; the model shifts it once.
        position_ids: int64, restarting at 0 in every document.
        loss_mask: bool, ``True`` where ``labels[:, t]`` is trained on (``False`` on padding, and on
            labels across a document join when ``eod_mask``). Always present.
        cu_seqlens: int32 boundaries of the documents over the flattened ``B·L`` inputs (rows are
            boundaries too); ``max_seqlen`` the longest segment.
        step, cursor: the step and the resume cursor after this batch.
        sequence_indices: int64 global sequence index of each row.
    """

    input_ids: torch.Tensor | None
    labels: torch.Tensor | None
    hf_labels: torch.Tensor | None
    position_ids: torch.Tensor | None
    loss_mask: torch.Tensor | None
    cu_seqlens: torch.Tensor | None
    max_seqlen: int
    step: int
    cursor: Cursor
    sequence_indices: torch.Tensor


class _Slot:
    """One set of reusable output buffers and what says whether it is still in use."""

    __slots__ = ("tensors", "arrays", "idle_counts", "event")

    def __init__(self, shapes: dict[str, tuple[tuple[int, ...], torch.dtype]], pin: bool):
        self.tensors = {k: torch.empty(shape, dtype=dtype, pin_memory=pin) for k, (shape, dtype) in shapes.items()}
        self.arrays = {k: t.numpy() for k, t in self.tensors.items()}
        self.event = None
        self.idle_counts = self._counts()

    def _counts(self) -> tuple[int, ...]:
        # Python references to each tensor (a dict or variable holding it, a numpy array made from
        # it) and C++ references to its storage (any view of it, a tensor made from it).
        out = []
        for t in self.tensors.values():
            out.append(sys.getrefcount(t))
            out.append(torch._C._storage_Use_Count(t.untyped_storage()._cdata))
        return tuple(out)

    @property
    def idle(self) -> bool:
        if self.event is not None:
            if not self.event.query():
                return False
            self.event = None
        return all(now <= idle for now, idle in zip(self._counts(), self.idle_counts))


class TensorConverter:
    """Converts batches of one session shape into tensors (see the module documentation).

    Args:
        batch_size, sequence_length: the session's ``B`` and ``L``.
        fields: which of :data:`FIELDS` to compute.
        dtype: of ``input_ids`` / ``labels`` (``torch.int64`` or ``torch.int32``).
        pin_memory: allocate pinned buffers (ignored, with a warning, when CUDA is not available).
        eod_mask: also mask the label across every document join (the first token of the next
            document, predicted from the last token of the previous one).
        keep: idle buffer sets kept for reuse.
    """

    def __init__(self, batch_size: int, sequence_length: int, fields=FIELDS, *, dtype: torch.dtype = torch.int64,
                 pin_memory: bool = False, eod_mask: bool = False, keep: int = 4):
        unknown = set(fields) - FIELDS
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}; known: {sorted(FIELDS)}")
        if dtype not in (torch.int64, torch.int32):
            raise ValueError(f"dtype must be torch.int64 or torch.int32, not {dtype}")
        if pin_memory and not torch.cuda.is_available():
            log.warning("tokenfeed: pin_memory=True but CUDA is not available; buffers are not pinned")
            pin_memory = False
        B, L = batch_size, sequence_length
        self.B, self.L, self.fields, self.dtype, self.pin, self.eod_mask, self.keep = B, L, frozenset(fields), dtype, pin_memory, eod_mask, keep
        shapes: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
        for name in ("input_ids", "labels", "hf_labels"):
            if name in self.fields or (name == "input_ids" and "hf_labels" in self.fields):
                shapes[name] = ((B, L), dtype)
        if "position_ids" in self.fields:
            shapes["position_ids"] = ((B, L), torch.int64)
        shapes["loss_mask"] = ((B, L), torch.bool)  # also what hf_labels is made from
        self._shapes = shapes
        self._slots: list[_Slot] = []
        self._arange = np.arange(L, dtype=np.int64)
        if "position_ids" in self.fields:
            self._steps = np.zeros(B * L, dtype=np.int64)
            self._seg = np.empty(B * L, dtype=np.int64)
            self._tiled = np.tile(self._arange, B)
        self._warned = False

    def _acquire(self) -> _Slot:
        chosen, kept, idle = None, [], 0
        for s in self._slots:
            if s.idle:
                if chosen is None:
                    chosen = s
                    continue
                idle += 1
                if idle >= self.keep:
                    continue  # drop surplus idle sets
            kept.append(s)
        if chosen is None:
            chosen = _Slot(self._shapes, self.pin)
        kept.append(chosen)
        self._slots = kept
        if len(kept) - idle > 64 and not self._warned:
            self._warned = True
            log.warning("tokenfeed: %d converted batches are still referenced; each keeps its buffers "
                        "(clone what you keep)", len(kept) - idle)
        return chosen

    def convert(self, batch: Batch) -> TensorBatch:
        """The tensors of ``batch`` (which may be dropped afterwards: nothing refers to its buffer)."""
        B, L = self.B, self.L
        if (batch.batch_size, batch.sequence_length) != (B, L):
            raise ValueError(f"batch of {batch.batch_size}×{batch.sequence_length}, converter for {B}×{L}")
        slot = self._acquire()
        a = slot.arrays
        tokens = batch.tokens
        if "input_ids" in a:
            np.copyto(a["input_ids"], tokens[:, :L], casting="unsafe")
        if "labels" in a:
            np.copyto(a["labels"], tokens[:, 1:], casting="unsafe")

        # Segment geometry over the flattened B·L inputs, whole arrays at a time: every piece that
        # starts inside the inputs starts a segment (rows are segment boundaries too).
        start = batch.cu_table[batch._cu_index].astype(np.int64)
        row_of = batch._row_of_piece
        keep = start < L
        seg_row, seg_start = row_of[keep], start[keep]
        seg_flat = seg_row * L + seg_start  # ascending; seg_flat[0] == 0

        # Loss mask: padding, then (optionally) the labels across document joins.
        mask = a["loss_mask"]
        padded = batch.rows["padded_tokens"]
        mask.fill(True)
        if padded.any():
            for r in np.flatnonzero(padded):
                mask[r, L - int(padded[r]):] = False
        joins = None
        if self.eod_mask and batch.piece_count > B:
            j = (start > 0) & (start <= L)  # a piece starting at s: the label of input s - 1 is its first token
            joins = row_of[j] * L + start[j] - 1
            mask.reshape(-1)[joins] = False
        masked = bool(padded.any()) or (joins is not None and len(joins) > 0)

        if "position_ids" in a:
            pos = a["position_ids"].reshape(-1)
            if len(seg_flat) == B:  # one segment per row
                np.copyto(a["position_ids"], self._arange)
            else:
                # The start of each token's segment: a running sum of the steps between segment
                # starts, then position = t - start (numpy, single-threaded: no pool threads to wake).
                steps = self._steps
                steps.fill(0)
                steps[seg_flat[1:]] = seg_start[1:] - seg_start[:-1]
                np.cumsum(steps, out=self._seg)
                np.subtract(self._tiled, self._seg, out=pos)

        if "hf_labels" in a:
            hl = a["hf_labels"]
            np.copyto(hl, a["input_ids"])
            hl[:, 0] = _IGNORE_INDEX
            if masked:
                np.copyto(hl[:, 1:], _IGNORE_INDEX, where=~mask[:, :-1])

        cu_flat = None
        max_seqlen = 0
        if "cu_seqlens" in self.fields:
            cu = np.empty(len(seg_flat) + 1, dtype=np.int32)
            cu[:-1] = seg_flat
            cu[-1] = B * L
            cu_flat = torch.from_numpy(cu)
            max_seqlen = int((cu[1:] - cu[:-1]).max())
        t = slot.tensors
        return TensorBatch(t.get("input_ids") if "input_ids" in self.fields else None, t.get("labels"), t.get("hf_labels"),
                           t.get("position_ids"), t["loss_mask"], cu_flat, max_seqlen, batch.step, batch.cursor,
                           torch.from_numpy(batch.rows["sequence_index"].astype(np.int64)))

    def to_device(self, out: dict, device: torch.device) -> dict:
        """``out``'s tensors copied to ``device`` (``non_blocking`` from pinned buffers); the buffer set
        is not reused before the copies are done."""
        moved = {k: (v.to(device, non_blocking=self.pin) if isinstance(v, torch.Tensor) else v) for k, v in out.items()}
        if self.pin and device.type == "cuda":
            event = torch.cuda.Event()
            event.record()
            self._slots[-1].event = event
        return moved
