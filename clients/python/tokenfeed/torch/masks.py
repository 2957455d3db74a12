"""Document-isolated attention: the block-diagonal causal mask from ``cu_seqlens`` or ``position_ids``.

For SDPA and eager attention (flash-attention varlen takes ``cu_seqlens`` directly). The mask is
dense, ``N × N`` per row: fine for short sequences and tests, costly at long ones (use varlen
kernels there).
"""

from __future__ import annotations

import torch


def segment_ids(*, cu_seqlens: torch.Tensor | None = None, position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """The document index of every token: ``(N,)`` from ``cu_seqlens`` (boundaries over ``N`` tokens),
    or ``(B, L)`` from ``position_ids`` (a document starts where the position is 0)."""
    if (cu_seqlens is None) == (position_ids is None):
        raise ValueError("give exactly one of cu_seqlens and position_ids")
    if cu_seqlens is not None:
        cu = cu_seqlens.to(torch.int64)
        return torch.repeat_interleave(torch.arange(len(cu) - 1, device=cu.device), cu[1:] - cu[:-1])
    return torch.cumsum(position_ids == 0, dim=-1)


def block_causal_mask(*, cu_seqlens: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                      dtype: torch.dtype | None = None) -> torch.Tensor:
    """The causal mask restricted to each document: query ``i`` may attend key ``j`` iff ``j ≤ i`` and
    both are in the same document.

    Returns ``(1, 1, N, N)`` (from ``cu_seqlens``) or ``(B, 1, L, L)`` (from ``position_ids``): bool with
    ``True`` = attend (SDPA's ``attn_mask``, Hugging Face's 4D ``attention_mask``); with ``dtype`` a
    float additive mask, 0 where attending and the dtype's minimum elsewhere.
    """
    seg = segment_ids(cu_seqlens=cu_seqlens, position_ids=position_ids)
    if seg.dim() == 1:
        seg = seg[None]
    n = seg.shape[-1]
    causal = torch.ones(n, n, dtype=torch.bool, device=seg.device).tril()
    mask = (seg[:, :, None] == seg[:, None, :]) & causal
    mask = mask[:, None]
    if dtype is None:
        return mask
    out = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return out.masked_fill_(~mask, torch.finfo(dtype).min)
