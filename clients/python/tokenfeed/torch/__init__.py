"""PyTorch adapter of the tokenfeed client (``pip install 'tokenfeed[torch]'``).

``import tokenfeed`` never imports torch; importing this module does, and fails with an
``ImportError`` saying how to install it when torch is missing.

- :class:`TokenfeedIterableDataset`: an ``IterableDataset`` yielding dicts of tensors for one
  data-parallel rank, resumable through ``state_dict()`` / ``load_state_dict()`` (torchdata's
  ``StatefulDataLoader``), reconnecting from the last consumed cursor when the daemon restarts.
- :mod:`~tokenfeed.torch.keymaps`: the keys and label conventions of Hugging Face (also its
  flash-attention varlen keys), nanotron and Megatron.
- :func:`block_causal_mask`: the block-diagonal causal mask (document-isolated attention) for SDPA
  or eager attention, from ``cu_seqlens`` or ``position_ids``.
"""

try:
    import torch as _torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised where torch is missing
    raise ImportError("tokenfeed.torch needs PyTorch: pip install 'tokenfeed[torch]' (or pip install torch)") from e

from .convert import TensorBatch, TensorConverter
from .dataset import TokenfeedIterableDataset
from .keymaps import KEY_MAPS, hf_labels
from .masks import block_causal_mask, segment_ids

__all__ = ["TokenfeedIterableDataset", "TensorBatch", "TensorConverter", "KEY_MAPS", "hf_labels",
           "block_causal_mask", "segment_ids"]
