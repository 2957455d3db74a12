#!/usr/bin/env python3
"""Tensor parallelism on tokenfeed: the processes of one tensor-parallel group read their
data-parallel rank's batches as **replicas**, each straight from the daemon:

    torchrun --nproc_per_node 4 examples/tensor_parallel.py --tp 2 --socket /run/tokenfeed/tokenfeed.sock

With ``--tp T`` the W processes form W/T tensor-parallel groups of T consecutive ranks (global rank
g: data-parallel rank ``g // T``, tensor-parallel rank ``g % T``). Every process creates a
``TokenfeedIterableDataset`` with ``rank=dp_rank, world_size=W // T`` — the **data-parallel** rank and
size, never the global ones — plus ``replicas=T, replica_index=tp_rank``. The daemon packs each
data-parallel rank's batches once and sends every replica every batch: no broadcast inside the group.

The model is a tiny language model whose output projection is split by columns across the group (a
column-parallel linear layer): each process computes the logits of its share of the vocabulary and
the group all-gathers them, which is only right when every process of the group holds the same batch
— the example checks that too (an all-gather of a hash of the inputs). ``--log-dir`` writes, per
global rank, the global sequence indices of each step (the tests check that a group's processes read
the same ones and that the groups together read the stream once). Runs on CPU with gloo.
"""

from __future__ import annotations

import argparse
import hashlib
import os

import torch
import torch.distributed as dist
from torchdata.stateful_dataloader import StatefulDataLoader

from tokenfeed.torch import TokenfeedIterableDataset


class ColumnParallelLM(torch.nn.Module):
    """Embedding, then an output projection whose vocabulary columns are split across the group."""

    def __init__(self, vocab: int, dim: int, tp: int, tp_rank: int, group):
        super().__init__()
        assert vocab % tp == 0
        self.group, self.tp = group, tp
        torch.manual_seed(0)  # the same embedding on every process
        self.embed = torch.nn.Embedding(vocab, dim)
        torch.manual_seed(1 + tp_rank)  # this process's share of the output columns
        self.out = torch.nn.Linear(dim, vocab // tp, bias=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        local = self.out(self.embed(input_ids))  # (B, L, vocab / tp)
        parts = [torch.empty_like(local) for _ in range(self.tp)]
        dist.all_gather(parts, local.contiguous(), group=self.group)
        parts[dist.get_rank(self.group)] = local  # keep this share's gradient
        return torch.cat(parts, dim=-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--socket", default=os.environ.get("TOKENFEED_SOCKET"))
    ap.add_argument("--tp", type=int, default=2, help="tensor-parallel group size")
    ap.add_argument("--batch-size", type=int, default=2, help="sequences per data-parallel rank per step")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--vocab", type=int, default=65536, help="ids are taken modulo this")
    ap.add_argument("--log-dir")
    args = ap.parse_args()

    dist.init_process_group("gloo")
    world, rank = dist.get_world_size(), dist.get_rank()
    tp = args.tp
    if world % tp:
        raise SystemExit(f"world size {world} is not a multiple of --tp {tp}")
    dp_size, dp_rank, tp_rank = world // tp, rank // tp, rank % tp
    groups = [dist.new_group(list(range(g * tp, (g + 1) * tp))) for g in range(dp_size)]  # every process creates every group
    group = groups[dp_rank]

    data = TokenfeedIterableDataset(args.socket, batch_size=args.batch_size, rank=dp_rank, world_size=dp_size,
                                    replicas=tp, replica_index=tp_rank, fields="tokenfeed")
    model = ColumnParallelLM(args.vocab, 32, tp, tp_rank, group)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    log = None
    if args.log_dir:
        os.makedirs(args.log_dir, exist_ok=True)
        log = open(os.path.join(args.log_dir, f"rank-{rank}-of-{world}.txt"), "w")

    for step, batch in enumerate(StatefulDataLoader(data, batch_size=None)):
        if step == args.steps:
            break
        ids = batch["input_ids"] % args.vocab
        labels = batch["labels"] % args.vocab
        # Tensor parallelism needs one batch per group: check it (a hash of the inputs, all-gathered).
        digest = torch.tensor(list(hashlib.sha256(ids.numpy().tobytes()).digest()[:8]), dtype=torch.int64)
        digests = [torch.empty_like(digest) for _ in range(tp)]
        dist.all_gather(digests, digest, group=group)
        if any(not torch.equal(d, digests[0]) for d in digests):
            raise SystemExit(f"rank {rank}: the processes of tensor-parallel group {dp_rank} hold different batches at step {step}")
        logits = model(ids)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, args.vocab), labels.reshape(-1), reduction="none")
        loss = (loss * batch["loss_mask"].reshape(-1)).sum() / batch["loss_mask"].sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if log is not None:
            log.write(" ".join(map(str, batch["sequence_indices"].tolist())) + "\n")
            log.flush()
        if rank == 0:
            print(f"step {step} loss {loss.item():.4f}", flush=True)
    data.close()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
