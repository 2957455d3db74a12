"""Independent checks of served rows against the shard files (read with tokenfeed.shards, which is
written from docs/SHARDS.md) and against the rules of docs/PROTOCOL.md and docs/CURRICULUM.md."""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from tokenfeed import Batch, Welcome
from tokenfeed.shards import Shard


@dataclasses.dataclass
class SeenRow:
    """A row copied out of a batch (so it outlives the receive buffer)."""

    step: int
    rank: int
    sequence: int
    dataset: int
    stage: int
    epoch: int
    padded: int
    tokens: np.ndarray
    cu: np.ndarray
    pieces: list  # (shard_index, document, offset, length)


def copy_rows(batch: Batch) -> list[SeenRow]:
    out = []
    for row in batch:
        out.append(SeenRow(batch.step, batch.rank, row.sequence_index, row.dataset_index, row.stage_index, row.epoch,
                           row.padded_tokens, np.array(row.tokens, copy=True), row.cu_seqlens.copy(),
                           [(p.shard_index, p.document_index, p.token_offset, p.length) for p in row.pieces]))
    return out


class ShardSet:
    """The data root's shards, opened on demand."""

    def __init__(self, root: pathlib.Path, welcome: Welcome):
        self.root = root
        self.welcome = welcome
        self._shards: dict[str, Shard] = {}

    def shard(self, dataset: int, index: int) -> Shard:
        path = self.welcome.datasets[dataset].shard_paths[index]
        if path not in self._shards:
            self._shards[path] = Shard(self.root / path)
        return self._shards[path]

    def stream_length(self, dataset: int) -> int:
        return sum(self.shard(dataset, i).token_count for i in range(len(self.welcome.datasets[dataset].shard_paths)))


def check_row_against_shards(row: SeenRow, shards: ShardSet, L: int) -> None:
    """Every token of the row equals the shard token its provenance names; pieces are runs of one
    document, split exactly at document ends; cu_seqlens are the running sums of the piece lengths."""
    assert row.tokens.shape == (L + 1,)
    assert row.cu.tolist() == [0] + np.cumsum([p[3] for p in row.pieces]).tolist()
    assert row.cu[-1] == L + 1
    for k, (shard_index, document, offset, length) in enumerate(row.pieces):
        start = int(row.cu[k])
        if shard_index == 0xFFFFFFFF:
            assert k == len(row.pieces) - 1 and length == row.padded
            continue
        shard = shards.shard(row.dataset, shard_index)
        expected = shard.tokens(offset, offset + length)
        got = row.tokens[start:start + length]
        assert np.array_equal(got, expected), f"sequence {row.sequence} piece {k}: tokens differ from {shard.path}"
        assert shard.document_of(offset) == document, f"sequence {row.sequence} piece {k}: document"
        doc_start, doc_end = shard.document_range(document)
        assert doc_start <= offset and offset + length <= doc_end, f"sequence {row.sequence} piece {k} crosses a document end"
        if k < len(row.pieces) - 1 and row.pieces[k + 1][0] != 0xFFFFFFFF:
            # A piece that is not the row's last ends where its document ends (or its shard does).
            assert offset + length == doc_end, f"sequence {row.sequence} piece {k} ends inside document {document}"


def expected_position_ids(cu: np.ndarray, L: int) -> np.ndarray:
    """Position ids of the L inputs, from cu_seqlens, by the doc's rule (t − cu[k] in segment k)."""
    out = np.empty(L, dtype=np.int64)
    for k in range(len(cu) - 1):
        for t in range(int(cu[k]), min(int(cu[k + 1]), L)):
            out[t] = t - int(cu[k])
    return out


def check_training_views(batch: Batch) -> None:
    """inputs/labels are views of the token block; position ids, loss mask and varlen cu_seqlens
    follow the doc's rules, recomputed here row by row."""
    L = batch.sequence_length
    assert np.shares_memory(batch.inputs, batch.tokens) and np.shares_memory(batch.labels, batch.tokens)
    assert batch.inputs.shape == batch.labels.shape == (batch.batch_size, L)
    assert np.array_equal(batch.inputs, batch.tokens[:, :L]) and np.array_equal(batch.labels, batch.tokens[:, 1:])
    assert batch.tokens.ctypes.data % 64 == 0, "the token block is 64-byte aligned"
    varlen = [0]
    for i, row in enumerate(batch):
        cu = row.cu_seqlens
        assert np.array_equal(batch.position_ids[i], expected_position_ids(cu, L))
        clipped = [min(int(c), L) for c in cu]
        if clipped[-1] == clipped[-2]:
            clipped.pop()
        assert row.input_cu_seqlens.tolist() == clipped
        varlen += [i * L + c for c in clipped[1:]]
        assert row.loss_mask.tolist() == [t + 1 < L + 1 - row.padded_tokens for t in range(L)]
    cu, longest = batch.varlen_cu_seqlens()
    assert cu.tolist() == varlen and longest == max(np.diff(varlen))
