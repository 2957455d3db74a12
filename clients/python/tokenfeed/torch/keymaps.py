"""Key maps: the batch dicts the trainers people run expect, with each one's label convention.

A key map turns a :class:`~tokenfeed.torch.convert.TensorBatch` into the dict a framework's model
or training step takes, and names the converter fields it needs (only those are computed).

============== =====================================================================================
``"tokenfeed"`` ``input_ids``, ``labels`` (already shifted: ``labels[:, t]`` is the target of
                ``input_ids[:, t]``), ``position_ids``, ``loss_mask`` (bool), ``cu_seqlens`` (int32,
                flattened ``B·L``), ``max_seqlen``, ``sequence_indices`` (int64, the rows' global
                sequence indices). For your own loss:
                ``cross_entropy(logits[loss_mask], labels[loss_mask])``.
``"hf"``        Hugging Face causal LMs: ``input_ids``, ``labels`` = ``input_ids`` (the model shifts
                once; masked labels are ``-100``), ``position_ids``.
``"hf_varlen"`` Hugging Face with flash-attention varlen (``attn_implementation="flash_attention_2"``):
                the ``B`` rows flattened to one row of ``B·L`` (``input_ids``, ``labels``,
                ``position_ids`` of shape ``(1, B·L)``), ``cu_seq_lens_q`` / ``cu_seq_lens_k`` and
                ``max_length_q`` / ``max_length_k``, as ``DataCollatorWithFlattening`` gives them.
                The label at the start of every row is ``-100`` (it would otherwise be predicted
                from the previous row).
``"nanotron"``  ``input_ids``, ``input_mask`` (all True), ``label_ids`` (shifted), ``label_mask``,
                ``position_ids``.
``"megatron"``  ``tokens``, ``labels`` (shifted), ``loss_mask`` (float), ``position_ids``,
                ``cu_seqlens`` / ``max_seqlen`` (``PackedSeqParams`` for document-isolated
                attention); a dense ``attention_mask`` from :func:`~tokenfeed.torch.block_causal_mask`
                if you need one (Megatron's convention is ``True`` = masked: pass ``~mask``).
============== =====================================================================================
"""

from __future__ import annotations

from typing import Callable

import torch

from .convert import TensorBatch

KeyMap = tuple[frozenset, Callable[[TensorBatch], dict]]


def _tokenfeed(b: TensorBatch) -> dict:
    return {"input_ids": b.input_ids, "labels": b.labels, "position_ids": b.position_ids, "loss_mask": b.loss_mask,
            "cu_seqlens": b.cu_seqlens, "max_seqlen": b.max_seqlen, "sequence_indices": b.sequence_indices}


def _hf(b: TensorBatch) -> dict:
    return {"input_ids": b.input_ids, "labels": b.hf_labels, "position_ids": b.position_ids}


def _hf_varlen(b: TensorBatch) -> dict:
    return {"input_ids": b.input_ids.view(1, -1), "labels": b.hf_labels.view(1, -1),
            "position_ids": b.position_ids.view(1, -1), "cu_seq_lens_q": b.cu_seqlens, "cu_seq_lens_k": b.cu_seqlens,
            "max_length_q": b.max_seqlen, "max_length_k": b.max_seqlen}


def _nanotron(b: TensorBatch) -> dict:
    return {"input_ids": b.input_ids, "input_mask": torch.ones_like(b.loss_mask), "label_ids": b.labels,
            "label_mask": b.loss_mask, "position_ids": b.position_ids}


def _megatron(b: TensorBatch) -> dict:
    return {"tokens": b.input_ids, "labels": b.labels, "loss_mask": b.loss_mask.to(torch.float32),
            "position_ids": b.position_ids, "cu_seqlens": b.cu_seqlens, "max_seqlen": b.max_seqlen}


#: name → (converter fields, function building the dict).
KEY_MAPS: dict[str, KeyMap] = {
    "tokenfeed": (frozenset({"input_ids", "labels", "position_ids", "loss_mask", "cu_seqlens"}), _tokenfeed),
    "hf": (frozenset({"input_ids", "hf_labels", "position_ids"}), _hf),
    "hf_varlen": (frozenset({"input_ids", "hf_labels", "position_ids", "cu_seqlens"}), _hf_varlen),
    "nanotron": (frozenset({"input_ids", "labels", "position_ids", "loss_mask"}), _nanotron),
    "megatron": (frozenset({"input_ids", "labels", "position_ids", "loss_mask", "cu_seqlens"}), _megatron),
}


def resolve(fields) -> KeyMap:
    """The key map named ``fields``, or ``fields`` itself when it is a ``(fields, function)`` pair."""
    if isinstance(fields, str):
        try:
            return KEY_MAPS[fields]
        except KeyError:
            raise ValueError(f"unknown key map {fields!r}; known: {sorted(KEY_MAPS)}") from None
    needed, fn = fields
    return frozenset(needed), fn


def hf_labels(input_ids: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Hugging Face labels for ``input_ids`` given a shifted ``loss_mask`` (``loss_mask[:, t]`` says
    whether the target of position ``t``, token ``t + 1``, is trained on): ``input_ids`` with ``-100``
    where the previous position's target is masked, and in column 0 (never a target)."""
    out = input_ids.clone()
    out[:, 0] = -100
    out[:, 1:].masked_fill_(~loss_mask[:, :-1], -100)
    return out
