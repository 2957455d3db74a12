"""Receive buffers that are never overwritten while anything still refers to them.

A Batch's arrays are views into the buffer its frame was received into. Reusing that buffer while a
caller still holds the batch (or any array or tensor made from it without a copy) would silently
show the caller newer data. :class:`BufferPool` therefore hands out a buffer only when nothing
outside the pool refers to it: every numpy view of a buffer keeps a reference to the array that
owns its memory (numpy collapses view chains to the owner, and ``torch.from_numpy`` keeps the numpy
array alive), so the owner's reference count says whether the buffer is still in use.

The pool keeps at most ``keep`` idle buffers; when every buffer is in use it allocates another, so
memory grows only while the caller really keeps batches, and is given back when it lets them go.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np


class _Buffer:
    """One 64-byte-aligned receive buffer: ``owner`` holds the memory, ``view`` is the aligned part."""

    __slots__ = ("owner", "view", "idle_refs")

    def __init__(self, size: int, alignment: int = 64):
        self.owner = np.empty(size + alignment, dtype=np.uint8)
        shift = (-self.owner.ctypes.data) % alignment
        self.view = self.owner[shift:shift + size]
        self.idle_refs = self._refs()  # the count when only the pool refers to it

    def _refs(self) -> tuple[int, int]:
        # References to the owner (this object's slot, the aligned view's base, the call's argument,
        # and one per live array or tensor made from the buffer) and to the aligned view (held by a
        # live Batch).
        return sys.getrefcount(self.owner), sys.getrefcount(self.view)

    @property
    def idle(self) -> bool:
        """Whether nothing outside the pool refers to this buffer's memory."""
        owner, view = self._refs()
        return owner <= self.idle_refs[0] and view <= self.idle_refs[1]


class BufferPool:
    """Buffers for received Batch frames; a buffer still referenced by a live batch is never reused."""

    #: Buffers in use beyond which the pool warns (once) that batches are being kept.
    WARN_IN_USE = 64

    def __init__(self, keep: int, initial_size: int):
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self._keep = keep
        self._initial_size = initial_size
        self._buffers: list[_Buffer] = []
        self._warned = False

    def __len__(self) -> int:
        return len(self._buffers)

    @property
    def in_use(self) -> int:
        """Buffers that a live batch, array or tensor still refers to."""
        return sum(not b.idle for b in self._buffers)

    def acquire(self, size: int | None = None) -> np.ndarray:
        """An idle aligned buffer of at least ``size`` bytes (the initial size when ``None``).

        Idle buffers beyond ``keep`` are dropped; a new buffer is allocated when none is idle.
        """
        need = self._initial_size if size is None else size
        chosen = None
        kept: list[_Buffer] = []
        idle = 0
        for b in self._buffers:
            if b.idle:
                if chosen is None and len(b.view) >= need:
                    chosen = b
                    continue
                idle += 1
                if idle + (chosen is None) > self._keep:
                    continue  # drop surplus idle buffers
            kept.append(b)
        if chosen is None:
            chosen = _Buffer(need)
        kept.append(chosen)
        self._buffers = kept
        if not self._warned and len(kept) - idle > self.WARN_IN_USE:
            self._warned = True
            warnings.warn(f"tokenfeed: {len(kept) - idle} received batches are still referenced; each keeps its "
                          "receive buffer alive (copy what you keep: batch.copy() or np.array(...))",
                          ResourceWarning, stacklevel=3)
        return chosen.view

    def grow(self, buf: np.ndarray, size: int) -> np.ndarray:
        """A new buffer of ``size`` bytes taking the place of ``buf`` (just acquired, now dropped).

        The caller copies what it already received into ``buf``.
        """
        for i, b in enumerate(self._buffers):
            if b.view is buf:
                grown = _Buffer(size)
                self._buffers[i] = grown
                return grown.view
        raise ValueError("grow: the buffer was not acquired from this pool")
