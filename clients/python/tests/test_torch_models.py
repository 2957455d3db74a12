"""The key maps feed a real model (a 1-layer Llama from transformers, CPU) from a real tokenfeedd, and
each framework's loss convention gives the intended next-token loss; the block-diagonal mask isolates
documents. Skipped (with the reason) without torch, transformers or the binaries.

nanotron's and Megatron's own models are not installed here: their tests apply the framework's loss
convention (nanotron's ``label_ids``/``label_mask``, Megatron's ``labels``/``loss_mask``: already
shifted, masked mean) to the real model's logits."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SEQUENCE_LENGTH

torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'clients/python[torch]')")
transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install transformers)")
import torch.nn.functional as F  # noqa: E402

import tokenfeed  # noqa: E402
from tokenfeed.torch import TokenfeedIterableDataset, block_causal_mask, segment_ids  # noqa: E402

L = SEQUENCE_LENGTH
B = 2
TIMEOUT = 30


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=128256, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4 * L,
                                      attn_implementation="eager")
    m = transformers.LlamaForCausalLM(config).eval()
    return m


SKIP = 20  # batches skipped at the start of the stream (its first rows are long single documents)


def items(daemon, job, n, **kw):
    ds = TokenfeedIterableDataset(daemon.socket, batch_size=B, rank=0, world_size=1, job=job, timeout=TIMEOUT, **kw)
    it = iter(ds)
    for _ in range(SKIP):
        next(it)
    out = [{k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in next(it).items()} for _ in range(n)]
    ds.close()
    return out


def raw(daemon, job, n):
    with tokenfeed.Client(daemon.socket, 0, 1, B, job_id=job, timeout=TIMEOUT) as c:
        return [torch.from_numpy(b.tokens.astype(np.int64)) for _, b in zip(range(SKIP + n), c)][SKIP:]


def intended_loss(logits, tokens, mask, positions):
    """Mean cross entropy of predicting tokens[:, t + 1] at position t, over the masked-in t < positions."""
    logits, target, m = logits[:, :positions], tokens[:, 1:positions + 1], mask[:, :positions]
    return F.cross_entropy(logits[m].float(), target[m])


@pytest.mark.parametrize("eod_mask", [False, True])
def test_hf_causal_lm_loss_is_the_next_token_loss(daemon, model, eod_mask):
    job = f"hf-{eod_mask}"
    masked = 0
    for tokens, batch in zip(raw(daemon, job + "-raw", 4), items(daemon, job, 4, fields="hf", eod_mask=eod_mask)):
        assert set(batch) == {"input_ids", "labels", "position_ids"}
        with torch.no_grad():
            out = model(**batch)
        native_mask = batch["labels"][:, 1:] != -100  # the target of position t is labels[:, t + 1]
        expected = intended_loss(out.logits, tokens, native_mask, L - 1)  # HF trains positions 0..L-2
        assert torch.allclose(out.loss, expected, atol=1e-5), (out.loss, expected)
        masked += int((~native_mask).sum())
        # The old README's mistake (already-shifted labels) trains on the token two ahead: another loss.
        two_ahead = F.cross_entropy(out.logits[:, :L - 1].reshape(-1, out.logits.shape[-1]).float(), tokens[:, 2:].reshape(-1))
        assert not torch.allclose(two_ahead, expected, atol=1e-3)
    assert (masked > 0) == eod_mask


def test_nanotron_convention_gives_the_next_token_loss(daemon, model):
    for tokens, batch in zip(raw(daemon, "nt-raw", 3), items(daemon, "nt", 3, fields="nanotron", eod_mask=True)):
        assert set(batch) == {"input_ids", "input_mask", "label_ids", "label_mask", "position_ids"}
        assert batch["input_mask"].all() and batch["label_mask"].dtype == torch.bool
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
        # nanotron: per-token cross entropy of label_ids, masked mean by label_mask.
        ce = F.cross_entropy(logits.transpose(1, 2).float(), batch["label_ids"], reduction="none")
        loss = (ce * batch["label_mask"]).sum() / batch["label_mask"].sum()
        expected = intended_loss(logits, tokens, batch["label_mask"], L)
        assert torch.allclose(loss, expected, atol=1e-5)


def test_megatron_convention_gives_the_next_token_loss(daemon, model):
    for tokens, batch in zip(raw(daemon, "mg-raw", 3), items(daemon, "mg", 3, fields="megatron")):
        assert {"tokens", "labels", "loss_mask", "position_ids", "cu_seqlens", "max_seqlen"} <= set(batch)
        assert batch["loss_mask"].dtype == torch.float32
        with torch.no_grad():
            logits = model(input_ids=batch["tokens"], position_ids=batch["position_ids"]).logits
        # Megatron: loss_func = sum(losses.view(-1) * loss_mask.view(-1)) / loss_mask.sum().
        losses = F.cross_entropy(logits.transpose(1, 2).float(), batch["labels"], reduction="none")
        loss = torch.sum(losses.view(-1) * batch["loss_mask"].view(-1)) / batch["loss_mask"].sum()
        expected = intended_loss(logits, tokens, batch["loss_mask"].bool(), L)
        assert torch.allclose(loss, expected, atol=1e-5)


def test_hf_varlen_keys_match_data_collator_with_flattening(daemon):
    from transformers import DataCollatorWithFlattening
    collator = DataCollatorWithFlattening(return_flash_attn_kwargs=True, return_tensors="pt")
    for batch in items(daemon, "varlen", 5, fields="hf_varlen", eod_mask=True):
        ids = batch["input_ids"][0]
        cu = batch["cu_seq_lens_q"]
        # The same documents as separate examples: HF's own flattening must give the same batch.
        features = [{"input_ids": ids[a:b].tolist()} for a, b in zip(cu[:-1].tolist(), cu[1:].tolist())]
        expected = collator(features)
        assert torch.equal(batch["input_ids"], expected["input_ids"])
        assert torch.equal(batch["labels"], expected["labels"])
        assert torch.equal(batch["position_ids"], expected["position_ids"])
        assert torch.equal(batch["cu_seq_lens_q"], expected["cu_seq_lens_q"].to(torch.int32))
        assert torch.equal(batch["cu_seq_lens_k"], batch["cu_seq_lens_q"])
        assert batch["max_length_q"] == batch["max_length_k"] == int(expected["max_length_q"])


def test_block_causal_mask_isolates_documents_in_a_real_model(daemon, model):
    batch = max(items(daemon, "mask", 20, fields="hf_varlen"), key=lambda b: len(b["cu_seq_lens_q"]))
    cu = batch["cu_seq_lens_q"]
    ids, pos = batch["input_ids"], batch["position_ids"]
    assert len(cu) > B + 1, "the batch has rows with several documents"
    mask = block_causal_mask(cu_seqlens=cu)
    assert mask.shape == (1, 1, B * L, B * L)
    seg = segment_ids(cu_seqlens=cu)
    for i in (0, 5, B * L - 1):  # brute force on a few queries
        assert mask[0, 0, i].tolist() == [j <= i and bool(seg[j] == seg[i]) for j in range(B * L)]
    assert torch.equal(block_causal_mask(position_ids=pos)[0, 0], mask[0, 0])
    with torch.no_grad():
        packed = model(input_ids=ids, position_ids=pos, attention_mask=block_causal_mask(cu_seqlens=cu, dtype=torch.float32)).logits[0]
        for a, b in zip(cu[:-1].tolist(), cu[1:].tolist()):
            alone = model(input_ids=ids[:, a:b]).logits[0]  # the document by itself
            assert torch.allclose(packed[a:b], alone, atol=1e-4), (a, b)
