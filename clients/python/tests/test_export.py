"""``tokenfeed export`` read back the way other loaders read it.

The datatrove and Megatron exports are read with datatrove's ``DatatroveFolderDataset`` and
megatron-core's ``IndexedDataset`` when those packages are installed, and always with readers that
follow their conventions (datatrove: window ``i`` of a file is its tokens ``[i·(L+1), (i+1)·(L+1))``;
Megatron: the ``MMIDIDX`` index's lengths and pointers); every sequence is compared with
``tokenfeed dump --offline`` over the same range.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from conftest import CURRICULUM, SEQUENCE_LENGTH, run

ROW = SEQUENCE_LENGTH + 1
# Tokens 6,000..16,000: sequences 94..<250, across the stage boundary (sequence 157).
FIRST, END = 94, 250


@pytest.fixture(scope="module")
def curriculum(tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("export") / "curriculum.yaml"
    path.write_text(CURRICULUM)
    return path


def dump(tokenfeed_bin, curriculum, data_root, first: int, count: int) -> list[dict]:
    out = run([tokenfeed_bin, "dump", "--offline", str(curriculum), "--data-root", str(data_root), "--json",
               "--step", str(first), "--count", str(count)]).stdout
    return [json.loads(line) for line in out.splitlines()]


def export(tokenfeed_bin, curriculum, data_root, out: pathlib.Path, fmt: str) -> dict:
    run([tokenfeed_bin, "export", str(curriculum), "--data-root", str(data_root), "--out", str(out),
         "--tokens", "6000..16000", "--format", fmt, "--shard-tokens", "4000"])
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["complete"] and manifest["parameters"]["first_sequence"] == FIRST
    return manifest


def datatrove_windows(folder: pathlib.Path, token_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(tokens, positions) of every window, files in name order, as DatatroveFolderDataset reads them."""
    rows = []
    dtype = np.uint16 if token_size == 2 else np.uint32
    for ds in sorted(folder.glob("*.ds")):
        tokens = np.fromfile(ds, dtype=f"<{'u2' if token_size == 2 else 'u4'}").astype(dtype)
        ends = np.fromfile(str(ds) + ".index", dtype="<u8").astype(np.int64)
        for i in range(len(tokens) // ROW):
            lo, hi = i * ROW, i * ROW + SEQUENCE_LENGTH
            cuts = [0] + [int(e) - lo for e in ends if lo < e <= hi]
            positions = np.empty(ROW, dtype=np.int64)
            starts = cuts + [ROW]
            for a, b in zip(starts[:-1], starts[1:]):
                positions[a:b] = np.arange(b - a)
            rows.append((tokens[lo:lo + ROW], positions))
    return rows


def positions_of(cu_seqlens: list[int]) -> np.ndarray:
    positions = np.empty(ROW, dtype=np.int64)
    for a, b in zip(cu_seqlens[:-1], cu_seqlens[1:]):
        positions[a:b] = np.arange(b - a)
    return positions


def test_datatrove_export_windows_are_the_sequences(tokenfeed_bin, curriculum, data_root, tmp_path):
    export(tokenfeed_bin, curriculum, data_root, tmp_path / "dt", "datatrove")
    expected = dump(tokenfeed_bin, curriculum, data_root, FIRST, END - FIRST)
    rows = datatrove_windows(tmp_path / "dt", token_size=4)
    assert len(rows) == len(expected)
    for (tokens, positions), record in zip(rows, expected):
        assert tokens.tolist() == record["tokens"]
        assert positions.tolist() == positions_of(record["cu_seqlens"]).tolist()


def test_datatrove_export_with_datatrove(tokenfeed_bin, curriculum, data_root, tmp_path):
    pytest.importorskip("torch", reason="datatrove's dataset classes need torch")
    dataset_module = pytest.importorskip("datatrove.utils.dataset", reason="datatrove is not installed")
    export(tokenfeed_bin, curriculum, data_root, tmp_path / "dt", "datatrove")
    expected = dump(tokenfeed_bin, curriculum, data_root, FIRST, END - FIRST)
    dataset = dataset_module.DatatroveFolderDataset(str(tmp_path / "dt"), seq_len=SEQUENCE_LENGTH, token_size=4,
                                                    return_positions=True)
    assert len(dataset) == len(expected)
    for i, record in enumerate(expected):
        item = dataset[i]
        assert item["input_ids"].tolist() == record["tokens"]
        assert item["positions"].tolist() == positions_of(record["cu_seqlens"]).tolist()


def megatron_items(prefix: pathlib.Path) -> list[np.ndarray]:
    """The items of a megatron-core indexed dataset, read from its MMIDIDX index."""
    idx = (prefix.with_suffix(".idx")).read_bytes()
    assert idx[:9] == b"MMIDIDX\x00\x00" and int.from_bytes(idx[9:17], "little") == 1
    dtype = {8: np.uint16, 4: np.int32}[idx[17]]
    count = int.from_bytes(idx[18:26], "little")
    lengths = np.frombuffer(idx, dtype="<i4", count=count, offset=34)
    pointers = np.frombuffer(idx, dtype="<i8", count=count, offset=34 + 4 * count)
    documents = np.frombuffer(idx, dtype="<i8", count=count + 1, offset=34 + 12 * count)
    assert documents.tolist() == list(range(count + 1))
    data = np.fromfile(prefix.with_suffix(".bin"), dtype=np.dtype(dtype).newbyteorder("<"))
    size = np.dtype(dtype).itemsize
    return [data[p // size: p // size + n] for p, n in zip(pointers, lengths)]


def test_megatron_export_items_are_the_sequences(tokenfeed_bin, curriculum, data_root, tmp_path):
    manifest = export(tokenfeed_bin, curriculum, data_root, tmp_path / "mg", "megatron")
    expected = dump(tokenfeed_bin, curriculum, data_root, FIRST, END - FIRST)
    items = [item for group in manifest["groups"] for item in megatron_items(tmp_path / "mg" / group["files"][0][:-4])]
    assert [item.tolist() for item in items] == [record["tokens"] for record in expected]


def test_megatron_export_with_megatron_core(tokenfeed_bin, curriculum, data_root, tmp_path):
    pytest.importorskip("torch", reason="megatron-core needs torch")
    indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset", reason="megatron-core is not installed")
    manifest = export(tokenfeed_bin, curriculum, data_root, tmp_path / "mg", "megatron")
    expected = dump(tokenfeed_bin, curriculum, data_root, FIRST, END - FIRST)
    items = []
    for group in manifest["groups"]:
        dataset = indexed.IndexedDataset(str(tmp_path / "mg" / group["files"][0][:-4]))
        items += [dataset[i].tolist() for i in range(len(dataset))]
    assert items == [record["tokens"] for record in expected]
