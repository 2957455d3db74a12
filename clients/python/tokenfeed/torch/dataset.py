"""``TokenfeedIterableDataset``: one data-parallel rank's stream as a PyTorch ``IterableDataset``."""

from __future__ import annotations

import logging
import os
import time
from typing import Iterator

import torch
import torch.utils.data

from ..client import Client
from ..errors import (
    BusyError,
    ConnectionClosedError,
    ProtocolTimeoutError,
    RankInUseError,
    ReplicaLostError,
    ShuttingDownError,
)
from ..protocol import Cursor
from . import keymaps
from .convert import TensorConverter

log = logging.getLogger("tokenfeed")

#: Errors after which the dataset reconnects from the last consumed cursor: the daemon restarting
#: (``shutting_down``, the connection lost or refused), or its previous session of this rank not yet
#: gone (``rank_in_use``), or it being full (``busy``), or another replica of this rank's group
#: leaving (``replica_lost``: the group reconnects and resumes together).
RETRYABLE = (ShuttingDownError, ConnectionClosedError, RankInUseError, BusyError, ReplicaLostError)


def _distributed() -> tuple[int, int] | None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return None


class TokenfeedIterableDataset(torch.utils.data.IterableDataset):
    """The batches of one **data-parallel** rank, as dicts of tensors.

    Each item is a whole batch (``batch_size`` sequences): use ``DataLoader(dataset, batch_size=None)``
    or ``StatefulDataLoader(dataset, batch_size=None)``.

    Args:
        socket: the daemon's socket; default ``$TOKENFEED_SOCKET``.
        batch_size: sequences per batch for this rank.
        rank, world_size: the **data-parallel** rank and size. Default: ``torch.distributed``'s rank
            and world size when it is initialised, else ``$RANK`` / ``$WORLD_SIZE``, else 0 / 1. With
            tensor or pipeline parallelism the global rank is *not* the data-parallel rank: pass the
            data-parallel rank and size yourself.
        replicas, replica_index: tensor/pipeline parallelism. The processes that train on the same
            data-parallel rank's batches (a tensor-parallel group) each create a dataset with the same
            ``rank``, ``world_size``, ``batch_size`` and cursor, ``replicas`` = the group's size and
            their own ``replica_index`` (e.g. the tensor-parallel rank). The daemon packs the rank's
            batches once and every replica receives every batch; if one replica leaves early the others
            get ``replica_lost`` and reconnect, and the group resumes together from the rank's cursor.
        job: the job id (default ``$TOKENFEED_JOB`` or none); auth_token as in the Hello.
        fields: a key map name (``"tokenfeed"``, ``"hf"``, ``"hf_varlen"``, ``"nanotron"``,
            ``"megatron"``; see :mod:`tokenfeed.torch.keymaps`) or a ``(fields, function)`` pair.
        device: move every tensor there (``non_blocking`` when ``pin_memory``); default: stay on CPU.
        pin_memory: pinned output buffers (for asynchronous copies to the GPU).
        eod_mask: mask the label across every document join (not trained: the first token of a
            document predicted from the end of the previous one).
        dtype: of the token tensors, ``torch.int64`` (default) or ``torch.int32``.
        cursor: start here (a :class:`~tokenfeed.Cursor`, its bytes or ``tfc1-`` text); ``load_state_dict``
            overrides it.
        credits: batches the daemon keeps in flight (it prefetches; a DataLoader worker adds nothing).
        timeout: seconds any single read, write or connect may wait before raising
            ``ProtocolTimeoutError`` (default 300).
        reconnect_timeout: how long to keep reconnecting (with exponential backoff from 0.1 s to
            5 s) after the daemon restarts or the connection is lost, before raising the last
            error (default 600 s; 0 disables reconnecting).

    ``state_dict()`` is the resume cursor after the last batch this dataset yielded (the last one
    consumed, with ``num_workers=0``), identical on every rank; ``load_state_dict()`` makes the next
    iteration continue exactly there (torchdata's ``StatefulDataLoader`` calls both).

    Workers: the daemon already prefetches (``credits``), so ``num_workers=0`` is the right setting.
    With ``num_workers > 0``, worker 0 owns the connection and the other workers yield nothing (a
    rank has one session); this works but only adds a process hop.
    """

    def __init__(self, socket: str | None = None, *, batch_size: int, rank: int | None = None,
                 world_size: int | None = None, job: str | None = None, fields="tokenfeed",
                 device=None, pin_memory: bool = False, eod_mask: bool = False, dtype: torch.dtype = torch.int64,
                 cursor=None, credits: int = 4, timeout: float = 300.0, reconnect_timeout: float = 600.0,
                 auth_token: str = "", replicas: int = 1, replica_index: int = 0):
        super().__init__()
        socket = socket or os.environ.get("TOKENFEED_SOCKET")
        if not socket:
            raise ValueError("no socket: pass socket= or set TOKENFEED_SOCKET")
        if (rank is None) != (world_size is None):
            raise ValueError("pass both rank and world_size, or neither")
        if rank is None:
            dist = _distributed()
            if dist is not None:
                rank, world_size = dist
            else:
                rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..<{world_size}")
        if not 0 <= replica_index < replicas <= 0xFFFF:
            raise ValueError(f"replica_index {replica_index} is not in 0..<replicas ({replicas})")
        self.replicas, self.replica_index = replicas, replica_index
        self.socket, self.batch_size, self.rank, self.world_size = socket, batch_size, rank, world_size
        self.job = job if job is not None else os.environ.get("TOKENFEED_JOB", "")
        self.fields_needed, self._build = keymaps.resolve(fields)
        self.device = None if device is None else torch.device(device)
        self.pin_memory, self.eod_mask, self.dtype = pin_memory, eod_mask, dtype
        self.credits, self.timeout, self.reconnect_timeout, self.auth_token = credits, timeout, reconnect_timeout, auth_token
        self._cursor: Cursor | None = None if cursor is None else Cursor.parse(cursor)
        self._client: Client | None = None
        self.reconnects = 0

    # -- checkpointing (torchdata Stateful) --------------------------------------------------------

    def state_dict(self) -> dict:
        """``{"cursor": text or None, "rank", "world_size", "batch_size"}``: where the next iteration starts."""
        return {"cursor": None if self._cursor is None else str(self._cursor), "rank": self.rank,
                "world_size": self.world_size, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state["cursor"]`` (another world size with the same global batch is fine)."""
        c = state.get("cursor")
        self._cursor = None if c is None else Cursor.parse(c)

    @property
    def cursor(self) -> Cursor | None:
        """The cursor after the last yielded batch (``None`` before the first)."""
        return self._cursor

    # -- iteration -----------------------------------------------------------------------------------

    def _connect(self) -> Client:
        """A session from the current cursor, retrying retryable errors with backoff until the deadline."""
        deadline = time.monotonic() + self.reconnect_timeout
        delay = 0.1
        while True:
            try:
                return Client(self.socket, self.rank, self.world_size, self.batch_size, cursor=self._cursor,
                              credits=self.credits, job_id=self.job, auth_token=self.auth_token, timeout=self.timeout,
                              replicas=self.replicas, replica_index=self.replica_index)
            except RETRYABLE as e:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("tokenfeed: rank %d cannot connect to %s (%s); retrying in %.1f s",
                            self.rank, self.socket, e, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def close(self) -> None:
        """Ends the current session, if any."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        if info is not None and info.id != 0:
            return iter(())  # worker 0 owns this rank's session
        return self._batches()

    def _batches(self) -> Iterator[dict]:
        self.close()  # a previous iteration's session holds the rank
        client = self._client = self._connect()
        converter = TensorConverter(self.batch_size, client.sequence_length, self.fields_needed, dtype=self.dtype,
                                    pin_memory=self.pin_memory, eod_mask=self.eod_mask)
        try:
            while True:
                try:
                    batch = client.next()
                except RETRYABLE as e:
                    if self.reconnect_timeout <= 0:
                        raise
                    log.warning("tokenfeed: rank %d lost its session (%s); reconnecting from %s",
                                self.rank, e, "the start" if self._cursor is None else f"step {self._cursor.next_step}")
                    client = self._client = self._connect()
                    self.reconnects += 1
                    log.warning("tokenfeed: rank %d reconnected at step %d", self.rank, client.next_step)
                    continue
                if batch is None:
                    return
                out = converter.convert(batch)
                del batch
                item = self._build(out)
                if self.device is not None:
                    item = converter.to_device(item, self.device)
                self._cursor = out.cursor
                yield item
        finally:
            if self._client is client:
                self.close()
