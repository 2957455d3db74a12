"""Reads a datatrove and a Megatron export with datatrove's and megatron-core's own classes and
compares every sequence with `tokenfeed dump --offline --json` over the same range.

    python examples/export_read_back.py DUMP.jsonl DATATROVE_DIR MEGATRON_DIR SEQUENCE_LENGTH
"""

import json
import pathlib
import sys

from datatrove.utils.dataset import DatatroveFolderDataset
from megatron.core.datasets.indexed_dataset import IndexedDataset

dump_path, datatrove_dir, megatron_dir, length = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
expected = [json.loads(line)["tokens"] for line in open(dump_path)]

manifest = json.loads((pathlib.Path(datatrove_dir) / "MANIFEST.json").read_text())
token_size = manifest["parameters"]["token_width"]
dataset = DatatroveFolderDataset(datatrove_dir, seq_len=length, token_size=token_size)
got = [dataset[i]["input_ids"].tolist() for i in range(len(dataset))]
assert got == expected, "datatrove read something else"
print(f"  datatrove DatatroveFolderDataset: {len(got)} sequences identical to the dump")

manifest = json.loads((pathlib.Path(megatron_dir) / "MANIFEST.json").read_text())
got = []
for group in manifest["groups"]:
    indexed = IndexedDataset(str(pathlib.Path(megatron_dir) / group["files"][0][: -len(".bin")]))
    got += [indexed[i].tolist() for i in range(len(indexed))]
assert got == expected, "megatron-core read something else"
print(f"  megatron-core IndexedDataset: {len(got)} sequences identical to the dump")
