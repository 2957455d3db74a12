"""tokenfeed.shards against shards written by the real `tokenfeed shard import`: format v2 keeps the
tokenizer's name; a v1 shard (the same file without the tagged-field section) still reads, with the
tokenizer unknown."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from conftest import run

from tokenfeed.shards import Shard, ShardError


def _import(tokenfeed_bin, tmp_path, tokenizer: str):
    ds = np.arange(1, 301, dtype="<u2")
    (tmp_path / "a.ds").write_bytes(ds.tobytes())
    (tmp_path / "a.ds.index").write_bytes(np.array([100, 300], dtype="<u8").tobytes())
    (tmp_path / "a.ds.metadata").write_text(f"{tokenizer}|2\n300\n300")
    out = tmp_path / "out"
    run([tokenfeed_bin, "shard", "import", "--from", "datatrove", str(tmp_path / "a.ds"), "--out", str(out),
         "--tokens-per-frame", "64"])
    return out / "a.zst", ds


def _as_v1(data: bytes) -> bytes:
    """The same shard in format v1: version 1 in header and metadata, no tagged-field section."""
    meta_offset, meta_size = struct.unpack_from("<QQ", data, len(data) - 16)
    payload = bytearray(data[meta_offset + 8:meta_offset + meta_size])
    n = struct.unpack_from("<I", payload, 20)[0]
    (section,) = struct.unpack_from("<Q", payload, 40 + 16 * n)
    body = payload[:48 + 16 * n + section]
    struct.pack_into("<H", body, 8, 1)
    body += struct.pack("<I", zlib.crc32(body))
    header = bytearray(data[:meta_offset])
    struct.pack_into("<H", header, 16, 1)
    footer = struct.pack("<II8sQQ", 0x184D2A50, 24, b"TFFOOT\0\0", meta_offset, 8 + len(body))
    return bytes(header) + struct.pack("<II", 0x184D2A50, len(body)) + bytes(body) + footer


def test_v2_shard_keeps_the_tokenizer(tokenfeed_bin, tmp_path):
    path, ds = _import(tokenfeed_bin, tmp_path, "HuggingFaceTB/SmolLM2-135M")
    shard = Shard(path)
    assert shard.format_version == 2
    assert shard.tokenizer == "HuggingFaceTB/SmolLM2-135M"
    assert np.array_equal(shard.tokens(0, 300), ds)


def test_v1_shard_reads_with_unknown_tokenizer(tokenfeed_bin, tmp_path):
    path, ds = _import(tokenfeed_bin, tmp_path, "gpt2")
    v1 = tmp_path / "v1.zst"
    v1.write_bytes(_as_v1(path.read_bytes()))
    shard = Shard(v1)
    assert shard.format_version == 1 and shard.tokenizer is None
    assert np.array_equal(shard.tokens(0, 300), ds)
    inspect = run([tokenfeed_bin, "shard", "inspect", str(v1)])
    assert "tokenizer     unknown" in inspect.stdout


def test_a_bad_tagged_section_is_named(tokenfeed_bin, tmp_path):
    path, _ = _import(tokenfeed_bin, tmp_path, "gpt2")
    data = bytearray(path.read_bytes())
    meta_offset, meta_size = struct.unpack_from("<QQ", data, len(data) - 16)
    end = meta_offset + meta_size                       # the payload ends here: …, "gpt2", CRC
    struct.pack_into("<I", data, end - 4 - 4 - 4, 1000)  # the entry's length, past the section
    payload = data[meta_offset + 8:end]
    struct.pack_into("<I", data, end - 4, zlib.crc32(payload[:-4]))
    bad = tmp_path / "bad.zst"
    bad.write_bytes(bytes(data))
    with pytest.raises(ShardError, match="tagged field"):
        Shard(bad)
