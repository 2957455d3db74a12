#!/usr/bin/env python3
"""The Hugging Face ``Trainer`` on tokenfeed, one data-parallel rank per process:

    torchrun --nproc_per_node 2 examples/hf_trainer.py --socket /run/tokenfeed/tokenfeed.sock --steps 100

Two things make each rank train on its own slice of the stream:

1. ``TokenfeedIterableDataset`` takes its rank and world size from ``torch.distributed`` (set up by
   torchrun), so rank r connects as rank r of W and receives sequences ``s·W·B + r·B + i``.
2. ``TokenfeedTrainer.get_train_dataloader`` returns a plain ``StatefulDataLoader(dataset,
   batch_size=None)`` that is *not* passed to ``accelerator.prepare``: by default accelerate iterates an
   ``IterableDataset`` on process 0 only and dispatches slices of its batches to the others — then rank 1
   never connects and half of the stream (sequences 2, 3, 6, 7, … for W = 2, B = 2) is never used.

``fields="hf"`` gives ``labels = input_ids`` (the model shifts once). ``--log-dir`` writes, per rank,
the global sequence indices it trained on (the tests check that both ranks connect and that together
they cover the stream once). A tiny ``LlamaForCausalLM`` on CPU (gloo) is enough to try it.
"""

from __future__ import annotations

import argparse
import os

import torch
import transformers
from torchdata.stateful_dataloader import StatefulDataLoader

from tokenfeed.torch import TokenfeedIterableDataset
from tokenfeed.torch.keymaps import KEY_MAPS


class TokenfeedTrainer(transformers.Trainer):
    """A ``Trainer`` whose training data comes from tokenfeed, each rank its own slice (no dispatch)."""

    def get_train_dataloader(self):
        return StatefulDataLoader(self.train_dataset, batch_size=None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--socket", default=os.environ.get("TOKENFEED_SOCKET"))
    ap.add_argument("--batch-size", type=int, default=2, help="sequences per rank per step")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--output-dir", default="hf-trainer-out")
    ap.add_argument("--log-dir")
    args = ap.parse_args()

    hf_fields, hf_build = KEY_MAPS["hf"]
    log = None

    def build(b):  # the "hf" key map, also recording which sequences this rank trains on
        if log is not None:
            log.write(" ".join(map(str, b.sequence_indices.tolist())) + "\n")
            log.flush()
        return hf_build(b)

    training_args = transformers.TrainingArguments(
        output_dir=args.output_dir, max_steps=args.steps, per_device_train_batch_size=args.batch_size,
        learning_rate=1e-3, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
        ddp_backend="gloo" if not torch.cuda.is_available() else None, dataloader_num_workers=0, seed=0)
    # After TrainingArguments: torch.distributed is initialised, so the dataset finds rank and world size.
    data = TokenfeedIterableDataset(args.socket, batch_size=args.batch_size, fields=(hf_fields, build))
    if args.log_dir:
        os.makedirs(args.log_dir, exist_ok=True)
        log = open(os.path.join(args.log_dir, f"rank-{data.rank}-of-{data.world_size}.txt"), "w")
    config = transformers.LlamaConfig(vocab_size=128256, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096)
    model = transformers.LlamaForCausalLM(config)
    trainer = TokenfeedTrainer(model=model, args=training_args, train_dataset=data)
    trainer.train()
    data.close()


if __name__ == "__main__":
    main()
