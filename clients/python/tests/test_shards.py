"""tokenfeed.shards against shards written by the real `tokenfeed shard import` and read by the real
`tokenfeed`: format v3 (paged index) both ways, the tokenizer kept, version 2 refused with the upgrade
command, which rewrites it into the bytes a v3 import gives."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from conftest import run

from tokenfeed.shards import ENDS_PER_PAGE, Shard, ShardError, write_shard


def _import(tokenfeed_bin, tmp_path, tokenizer: str, count: int = 1300):
    lengths = [1 + (i * 7) % 5 for i in range(count)]  # more than two document-end pages
    ds = (np.arange(sum(lengths), dtype=np.int64) % 60000 + 1).astype("<u2")
    (tmp_path / "a.ds").write_bytes(ds.tobytes())
    (tmp_path / "a.ds.index").write_bytes(np.cumsum(lengths).astype("<u8").tobytes())
    (tmp_path / "a.ds.metadata").write_text(f"{tokenizer}|2\n{len(ds)}\n{len(ds)}")
    out = tmp_path / "out"
    run([tokenfeed_bin, "shard", "import", "--from", "datatrove", str(tmp_path / "a.ds"), "--out", str(out),
         "--tokens-per-frame", "64", "--vocab-size", "65536"])
    return out / "a.zst", ds, np.cumsum(lengths)


def _leb128(values) -> bytes:
    out = bytearray()
    for v in values:
        v = int(v)
        while v >= 0x80:
            out.append(v & 0x7F | 0x80)
            v >>= 7
        out.append(v)
    return bytes(out)


def _as_v2(shard: Shard, data: bytes) -> bytes:
    """The same shard in format v2: frame table and LEB128 document lengths inside the metadata."""
    ends = shard.document_ends
    body = bytearray(struct.pack("<8sHBBIIIQQ", b"TFMETA\0\0", 2, shard.token_width, 0, shard.tokens_per_frame,
                                 shard.vocabulary_size, shard.frame_count, shard.token_count, shard.document_count))
    for k in range(shard.frame_count):
        body += struct.pack("<QII", *shard.frame_entry(k))
    lengths = _leb128(np.diff(np.concatenate([[0], ends])))
    body += struct.pack("<Q", len(lengths)) + lengths
    name = shard.tokenizer.encode()
    fields = struct.pack("<HI", 1, len(name)) + name
    body += struct.pack("<Q", len(fields)) + fields
    body += struct.pack("<I", zlib.crc32(body))
    header = bytearray(data[:shard.index_offset])
    struct.pack_into("<H", header, 16, 2)
    meta_offset = len(header)
    footer = struct.pack("<II8sQQ", 0x184D2A50, 24, b"TFFOOT\0\0", meta_offset, 8 + len(body))
    return bytes(header) + struct.pack("<II", 0x184D2A50, len(body)) + bytes(body) + footer


def test_v3_shard_keeps_the_tokenizer_and_pages_its_index(tokenfeed_bin, tmp_path):
    path, ds, ends = _import(tokenfeed_bin, tmp_path, "HuggingFaceTB/SmolLM2-135M")
    shard = Shard(path)
    assert shard.format_version == 3
    assert shard.tokenizer == "HuggingFaceTB/SmolLM2-135M"
    assert shard.document_count == len(ends) > 2 * ENDS_PER_PAGE
    assert np.array_equal(shard.tokens(0, len(ds)), ds)
    assert np.array_equal(shard.document_ends, ends)
    for d in (0, 1, ENDS_PER_PAGE - 1, ENDS_PER_PAGE, len(ends) - 1):
        start, end = shard.document_range(d)
        assert end == ends[d] and start == (ends[d - 1] if d else 0)
        assert shard.document_of(end - 1) == d and shard.document_of(start) == d
    assert (tmp_path / "out" / "tokenfeed.manifest").exists()


def test_python_writer_is_read_by_tokenfeed(tokenfeed_bin, tmp_path):
    docs = [list(range(1 + i, 1 + i + 1 + i % 9)) for i in range(1200)]
    path = tmp_path / "p" / "w.zst"
    path.parent.mkdir()
    write_shard(path, docs, token_width=2, tokens_per_frame=100, vocabulary_size=5000, tokenizer="gpt2")
    verify = run([tokenfeed_bin, "shard", "verify", "--verbose", str(path)])
    assert "ok " in verify.stdout
    inspect = run([tokenfeed_bin, "shard", "inspect", str(path)])
    assert "gpt2" in inspect.stdout and "tokenfeed shard v3" in inspect.stdout
    shard = Shard(path)
    assert np.array_equal(shard.all_tokens(), np.concatenate([np.array(d) for d in docs]))
    assert shard.document_count == len(docs)


def test_v2_is_refused_with_the_upgrade_command_which_restores_the_v3_bytes(tokenfeed_bin, tmp_path):
    path, ds, _ = _import(tokenfeed_bin, tmp_path, "gpt2")
    original = path.read_bytes()
    old = tmp_path / "old"
    old.mkdir()
    (old / "a.zst").write_bytes(_as_v2(Shard(path), original))
    with pytest.raises(ShardError, match=f"run `tokenfeed shard upgrade {old}`"):
        Shard(old / "a.zst")
    upgrade = run([tokenfeed_bin, "shard", "upgrade", str(old)])
    assert "1 shard upgraded to version 3" in upgrade.stdout
    assert (old / "a.zst").read_bytes() == original
    assert np.array_equal(Shard(old / "a.zst").all_tokens(), ds)


def test_a_bad_index_page_is_named(tokenfeed_bin, tmp_path):
    path, _, _ = _import(tokenfeed_bin, tmp_path, "gpt2")
    shard = Shard(path)
    data = bytearray(path.read_bytes())
    start = shard._sections["document_ends"][0]
    page_1 = start + 8 + ENDS_PER_PAGE * 8 + 4          # the second document-end page
    data[page_1 + 12] ^= 0x01
    bad = tmp_path / "bad.zst"
    bad.write_bytes(bytes(data))
    broken = Shard(bad)                                  # opens: pages are read when needed
    assert broken.document_range(0) == (0, shard.document_end(0))
    with pytest.raises(ShardError, match="document_ends page 1: checksum mismatch"):
        broken.document_range(ENDS_PER_PAGE + 3)
