"""tokenfeed.torch.TokenfeedIterableDataset against a real tokenfeedd: tensors equal the client's
batches, the loss mask and label conventions, StatefulDataLoader checkpoint/resume, reconnect across a
daemon restart, DataLoader workers, timeouts. Skipped (with the reason) without torch or the binaries."""

from __future__ import annotations

import socket as pysocket
import threading
import time

import numpy as np
import pytest
from conftest import END_TOKEN, SEQUENCE_LENGTH

torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'clients/python[torch]')")
import tokenfeed  # noqa: E402
from tokenfeed import errors as E  # noqa: E402
from tokenfeed.torch import TokenfeedIterableDataset  # noqa: E402

L = SEQUENCE_LENGTH
TOTAL_SEQUENCES = END_TOKEN // L
TIMEOUT = 30


def dataset(d, job, **kw) -> TokenfeedIterableDataset:
    kw.setdefault("batch_size", 4)
    kw.setdefault("rank", 0)
    kw.setdefault("world_size", 1)
    return TokenfeedIterableDataset(d.socket, job=job, timeout=TIMEOUT, **kw)


def test_tensors_equal_the_clients_batches_for_the_whole_stream(daemon):
    B = 4
    with tokenfeed.Client(daemon.socket, 0, 1, B, job_id="torch-ref", timeout=TIMEOUT) as c:
        ref = [(b.tokens.astype(np.int64), b.position_ids.copy(), b.varlen_cu_seqlens(), b.sequence_indices.astype(np.int64))
               for b in c]
    got = list(dataset(daemon, "torch-whole", batch_size=B))
    assert len(got) == len(ref) == TOTAL_SEQUENCES // B
    multi = 0
    for item, (tokens, pos, (cu, longest), seq) in zip(got, ref):
        assert item["input_ids"].dtype == torch.int64 and item["input_ids"].shape == (B, L)
        assert np.array_equal(item["input_ids"].numpy(), tokens[:, :-1])
        assert np.array_equal(item["labels"].numpy(), tokens[:, 1:])
        assert np.array_equal(item["position_ids"].numpy(), pos)
        assert item["loss_mask"].dtype == torch.bool and bool(item["loss_mask"].all())  # concat packing: no padding
        assert np.array_equal(item["cu_seqlens"].numpy(), cu) and item["max_seqlen"] == longest
        multi += len(cu) > B + 1
    assert multi > 100, "the stream has rows with several documents"


def test_eod_mask_masks_exactly_the_labels_across_document_joins(daemon):
    with tokenfeed.Client(daemon.socket, 0, 1, 4, job_id="torch-eod-ref", timeout=TIMEOUT) as c:
        ref = [[row.cu_seqlens.tolist() for row in b] for _, b in zip(range(40), c)]
    ds = dataset(daemon, "torch-eod", eod_mask=True)
    joins = 0
    for item, rows in zip(ds, ref):
        mask = item["loss_mask"].numpy()
        for r, cu in enumerate(rows):
            expected = np.ones(L, dtype=bool)
            for start in cu[1:-1]:  # a document starts at token `start`: label start-1 crosses the join
                if start <= L:
                    expected[start - 1] = False
                    joins += 1
            assert np.array_equal(mask[r], expected)
    ds.close()
    assert joins > 20


def test_hf_labels_are_the_inputs_with_masked_targets(start_daemon, data_root):
    text = (data_root / "curriculum.yaml").read_text().replace(
        "seed: 3\n", "seed: 3\npacking: {mode: bestfit, pad_token: 128004, lookahead: 16}\n")
    (data_root / "bestfit-torch.yaml").write_text(text)
    d = start_daemon(data_root / "bestfit-torch.yaml")
    native = dataset(d, "", fields="tokenfeed")
    hf = dataset(d, "", fields="hf", rank=0, world_size=1)
    padded = 0
    it_native = iter(native)
    items = [{k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in next(it_native).items()} for _ in range(60)]
    native.close()
    for a, b in zip(items, hf):
        assert torch.equal(b["input_ids"], a["input_ids"])
        labels = b["labels"]
        # HF shifts once: labels[:, t + 1] is the target of position t, -100 where loss_mask[:, t] is False.
        expected = a["input_ids"].clone()
        expected[:, 0] = -100
        expected[:, 1:][~a["loss_mask"][:, :-1]] = -100
        assert torch.equal(labels, expected)
        assert torch.equal(labels[:, 1:][a["loss_mask"][:, :-1]], a["labels"][:, :-1][a["loss_mask"][:, :-1]])
        padded += int((~a["loss_mask"]).any(dim=1).sum())
    hf.close()
    assert padded > 0, "bestfit packing padded some rows"


def take(it, n):
    return [{k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in next(it).items()} for _ in range(n)]


def test_stateful_dataloader_resumes_byte_identical(daemon):
    sdl = pytest.importorskip("torchdata.stateful_dataloader", reason="torchdata is not installed")
    full = take(iter(sdl.StatefulDataLoader(dataset(daemon, "torch-sdl-full"), batch_size=None)), 30)

    loader = sdl.StatefulDataLoader(dataset(daemon, "torch-sdl"), batch_size=None)
    it = iter(loader)
    first = take(it, 12)
    state = loader.state_dict()
    loader.dataset.close()
    del it, loader

    resumed = sdl.StatefulDataLoader(dataset(daemon, "torch-sdl"), batch_size=None)
    resumed.load_state_dict(state)
    rest = take(iter(resumed), 18)
    resumed.dataset.close()
    for a, b in zip(full, first + rest):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k], k


def test_kept_batches_never_change(daemon):
    ds = dataset(daemon, "torch-kept")
    it = iter(ds)
    kept = [next(it) for _ in range(10)]  # held: their buffers are not reused
    copies = [{k: v.clone() for k, v in item.items() if isinstance(v, torch.Tensor)} for item in kept]
    view = kept[0]["input_ids"][:, 3:]  # a view alone keeps its buffer too
    view_copy = view.clone()
    del kept[0]
    for _ in range(20):
        next(it)
    ds.close()
    for item, copy in zip(kept, copies[1:]):
        for k in copy:
            assert torch.equal(item[k], copy[k])
    assert torch.equal(view, view_copy)


def test_reconnects_across_a_daemon_restart_without_gap_or_repeat(start_daemon):
    d = start_daemon()
    path = d.socket
    ds = TokenfeedIterableDataset(path, batch_size=2, rank=0, world_size=1, timeout=TIMEOUT, reconnect_timeout=60)
    seen = []
    restarted = []

    def restart():
        d.stop()
        time.sleep(1.0)  # the loop finds no daemon for a while (connection refused, retried)
        restarted.append(start_daemon(socket=path))

    thread = None
    for item in ds:
        seen += item["sequence_indices"].tolist()
        if len(seen) == 40:
            thread = threading.Thread(target=restart)
            thread.start()
        if len(seen) >= 400:
            break
    ds.close()
    thread.join()
    assert seen == list(range(400)), "training continued with no gap and no repeat"
    assert ds.reconnects >= 1 and restarted
    assert ds.reconnects >= 1 and restarted


def test_dataloader_with_workers_serves_the_stream_once(daemon):
    from torch.utils.data import DataLoader
    ds = dataset(daemon, "torch-workers", fields=(frozenset({"input_ids"}), lambda b: {"seq": b.sequence_indices}))
    seqs = [int(s) for item in DataLoader(ds, batch_size=None, num_workers=2, timeout=TIMEOUT) for s in item["seq"]]
    assert seqs == list(range(TOTAL_SEQUENCES - TOTAL_SEQUENCES % 4))


def test_a_silent_daemon_times_out_instead_of_hanging(tmp_path):
    path = str(tmp_path / "silent.sock")
    server = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    ds = TokenfeedIterableDataset(path, batch_size=2, rank=0, world_size=1, timeout=0.5, reconnect_timeout=0)
    t0 = time.monotonic()
    with pytest.raises(E.ProtocolTimeoutError):
        next(iter(ds))
    assert time.monotonic() - t0 < 10
    server.close()


def test_rank_and_world_size_come_from_the_environment(monkeypatch, daemon):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TOKENFEED_SOCKET", daemon.socket)
    ds = TokenfeedIterableDataset(batch_size=4)
    assert (ds.rank, ds.world_size, ds.socket) == (1, 2, daemon.socket)
    with pytest.raises(ValueError, match="socket"):
        monkeypatch.delenv("TOKENFEED_SOCKET")
        TokenfeedIterableDataset(batch_size=4)


def test_tensor_parallel_replicas_each_receive_the_ranks_batches(daemon):
    """Two processes of one tensor-parallel group (replicas of data-parallel rank 1 of 2) each get
    every batch of that rank, the same tensors a single owner of the rank gets."""
    n = 12
    with tokenfeed.Client(daemon.socket, 1, 2, 4, job_id="torch-tp-ref", timeout=TIMEOUT) as c:
        ref = [b.tokens.astype(np.int64) for _, b in zip(range(n), c)]
    got: dict[int, list] = {}
    errors: list[BaseException] = []

    def replica(index: int) -> None:
        try:
            ds = dataset(daemon, "torch-tp", rank=1, world_size=2, replicas=2, replica_index=index)
            got[index] = [(item["input_ids"].numpy().copy(), item["labels"].numpy().copy(), ds.state_dict()["cursor"])
                          for _, item in zip(range(n), ds)]
            ds.close()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=replica, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    assert not errors, errors
    assert len(got[0]) == len(got[1]) == n
    for (ids0, labels0, cursor0), (ids1, labels1, cursor1), tokens in zip(got[0], got[1], ref):
        assert np.array_equal(ids0, tokens[:, :-1]) and np.array_equal(ids1, ids0)
        assert np.array_equal(labels0, tokens[:, 1:]) and np.array_equal(labels1, labels0)
        assert cursor0 == cursor1, "the cursor is the rank's, the same for every replica"


def test_replica_arguments_are_checked_and_replica_lost_is_retried(daemon):
    from tokenfeed.torch.dataset import RETRYABLE

    with pytest.raises(ValueError, match="replica_index"):
        dataset(daemon, "torch-tp-bad", replicas=2, replica_index=2)
    assert E.ReplicaLostError in RETRYABLE
