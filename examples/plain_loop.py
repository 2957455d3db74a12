#!/usr/bin/env python3
"""A plain PyTorch training loop on tokenfeed, with checkpoint and exact resume.

    python examples/plain_loop.py --socket /run/tokenfeed/tokenfeed.sock --steps 1000 \\
        --checkpoint ckpt.pt --save-every 100 [--resume]

The model, the optimizer and the data position are saved together; ``--resume`` continues from the
checkpoint, and the data continues exactly after the last batch trained on (torchdata's
``StatefulDataLoader`` saves the ``TokenfeedIterableDataset`` cursor). A tiny model on CPU is enough
to try it; put yours in ``make_model``. ``--log FILE`` appends one line per step: the step and a
SHA-256 of its input_ids (the tests compare an interrupted-and-resumed run with an uninterrupted one).
"""

from __future__ import annotations

import argparse
import hashlib
import os

import torch
import torch.nn.functional as F
from torchdata.stateful_dataloader import StatefulDataLoader

from tokenfeed.torch import TokenfeedIterableDataset


def make_model(vocab: int) -> torch.nn.Module:
    """A tiny next-token model (embedding, one MLP, output head): replace with yours."""
    return torch.nn.Sequential(torch.nn.Embedding(vocab, 32), torch.nn.Linear(32, 32), torch.nn.GELU(),
                               torch.nn.Linear(32, vocab))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--socket", default=os.environ.get("TOKENFEED_SOCKET"))
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20, help="train until this global step")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--save-every", type=int, default=10)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--vocab", type=int, default=128256)
    ap.add_argument("--log")
    args = ap.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = make_model(args.vocab)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    # rank/world size: torch.distributed when initialised, else RANK/WORLD_SIZE (here: 0 of 1).
    data = TokenfeedIterableDataset(args.socket, batch_size=args.batch_size, fields="tokenfeed")
    loader = StatefulDataLoader(data, batch_size=None)  # items are whole batches; num_workers=0
    step = 0
    if args.resume:
        ckpt = torch.load(args.checkpoint, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        loader.load_state_dict(ckpt["data"])
        step = ckpt["step"]
        print(f"resumed at step {step}, data cursor {ckpt['data_cursor']}", flush=True)

    log = open(args.log, "a") if args.log else None
    for batch in loader:
        if step >= args.steps:
            break
        logits = model(batch["input_ids"])
        mask = batch["loss_mask"]  # labels are already shifted: labels[:, t] is the target of input t
        loss = F.cross_entropy(logits[mask], batch["labels"][mask])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if log:
            digest = hashlib.sha256(batch["input_ids"].numpy().tobytes()).hexdigest()
            log.write(f"{step} {digest} {loss.item():.6f}\n")
            log.flush()
        if step % args.save_every == 0 or step == args.steps:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                        "data": loader.state_dict(), "data_cursor": data.state_dict()["cursor"]}, args.checkpoint)
    data.close()
    print(f"stopped at step {step}", flush=True)


if __name__ == "__main__":
    main()
