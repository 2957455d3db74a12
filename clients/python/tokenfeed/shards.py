"""A small reader of tokenfeed shard files, written from docs/SHARDS.md alone.

    shard = Shard("web/part_00000.zst")
    shard.token_count, shard.document_count, shard.token_width, shard.vocabulary_size
    shard.tokenizer                   # the tokenizer's name (format v2), or None when unknown
    shard.tokens(1000, 1064)          # numpy array of the tokens [1000, 1064)
    shard.document_of(1000)           # index of the document holding token 1000

Every structure is checked (tags, versions, the metadata CRC-32, the frame table, the document
lengths); each data frame's CRC-32 is checked before it is decompressed. Frames are decompressed
with the ``zstandard`` package when it is installed, else with the ``zstd`` command
(``zstd -dc`` on the frame's bytes).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib

import numpy as np

SKIPPABLE_MAGIC = 0x184D2A50
HEADER_TAG = b"TFSHARD\0"
META_TAG = b"TFMETA\0\0"
FOOTER_TAG = b"TFFOOT\0\0"
FORMAT_VERSIONS = (1, 2)
TAG_TOKENIZER = 1  # format v2 tagged-field section: the tokenizer's name, UTF-8

try:  # optional
    import zstandard as _zstandard  # type: ignore
except ImportError:  # pragma: no cover - depends on the machine
    _zstandard = None


class ShardError(Exception):
    """A shard file is malformed; the message names the file and the part (header, frame k, …)."""


def _decompress(data: bytes, expected_size: int, where: str) -> bytes:
    if _zstandard is not None:
        try:
            out = _zstandard.ZstdDecompressor().decompress(data, max_output_size=expected_size)
        except _zstandard.ZstdError as e:
            raise ShardError(f"{where}: zstd: {e}") from None
    else:
        zstd = shutil.which("zstd")
        if zstd is None:
            raise ShardError(f"{where}: neither the zstandard package nor the zstd command is available")
        proc = subprocess.run([zstd, "-dc", "-q"], input=data, capture_output=True, timeout=60)
        if proc.returncode != 0:
            raise ShardError(f"{where}: zstd -dc failed: {proc.stderr.decode(errors='replace').strip()}")
        out = proc.stdout
    if len(out) != expected_size:
        raise ShardError(f"{where}: decompressed to {len(out)} bytes, expected {expected_size}")
    return out


def _leb128_lengths(data: bytes, count: int, where: str) -> np.ndarray:
    out = np.empty(count, dtype=np.uint64)
    pos, n = 0, len(data)
    for i in range(count):
        value, shift = 0, 0
        while True:
            if pos >= n:
                raise ShardError(f"{where}: document lengths end after {i} of {count} lengths")
            b = data[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift > 63:
                raise ShardError(f"{where}: document length {i} is not a valid varint")
        if value < 1:
            raise ShardError(f"{where}: document {i} has length 0")
        out[i] = value
    if pos != n:
        raise ShardError(f"{where}: {n - pos} bytes after the last document length")
    return out


class Shard:
    """One shard file, opened and checked (header, footer, metadata); data frames are read on demand.

    Raises:
        ShardError naming the file and the part that is wrong.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._frames: dict[int, np.ndarray] = {}
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 24 + 32:
                raise ShardError(f"{self.path}: footer: not found at the end of the file ({size} bytes)")
            header = f.read(24)
            f.seek(size - 32)
            footer = f.read(32)
            self._parse_header(header)
            meta_offset, meta_size = self._parse_footer(footer, size)
            f.seek(meta_offset)
            meta = f.read(meta_size)
        self.file_size = size
        self._parse_metadata(meta, meta_offset)

    def _fail(self, part: str, problem: str) -> ShardError:
        return ShardError(f"{self.path}: {part}: {problem}")

    def _parse_header(self, h: bytes) -> None:
        magic, psize, tag, version, width, flags, tpf = struct.unpack("<II8sHBBI", h)
        if magic != SKIPPABLE_MAGIC or psize != 16 or tag != HEADER_TAG:
            raise self._fail("header", "bad magic (not a tokenfeed shard)")
        if version not in FORMAT_VERSIONS:
            raise self._fail("header", f"format version {version} is not supported")
        if width not in (2, 4):
            raise self._fail("header", f"token width {width} is not 2 or 4")
        if flags != 0:
            raise self._fail("header", f"flags {flags} are not 0")
        if not 1 <= tpf <= 1 << 28:
            raise self._fail("header", f"tokens per frame {tpf} is not in 1...2^28")
        self.token_width, self.tokens_per_frame, self.format_version = width, tpf, version
        self.dtype = np.dtype("<u2" if width == 2 else "<u4")

    def _parse_footer(self, b: bytes, size: int) -> tuple[int, int]:
        magic, psize, tag, meta_offset, meta_size = struct.unpack("<II8sQQ", b)
        if magic != SKIPPABLE_MAGIC or psize != 24 or tag != FOOTER_TAG:
            raise self._fail("footer", "not found at the end of the file")
        if meta_offset + meta_size != size - 32 or meta_offset < 24 or meta_size < 8:
            raise self._fail("footer", f"metadata at {meta_offset} of {meta_size} bytes does not end at file size − 32 = {size - 32}")
        return meta_offset, meta_size

    def _parse_metadata(self, m: bytes, meta_offset: int) -> None:
        magic, psize = struct.unpack_from("<II", m, 0)
        payload = m[8:]
        if magic != SKIPPABLE_MAGIC or psize != len(payload):
            raise self._fail("metadata", f"bad skippable frame header (magic 0x{magic:08x}, size {psize})")
        if len(payload) < 52:
            raise self._fail("metadata", f"payload of {len(payload)} bytes is too short")
        (stored,) = struct.unpack_from("<I", payload, len(payload) - 4)
        computed = zlib.crc32(payload[:-4])
        if stored != computed:
            raise self._fail("metadata", f"checksum mismatch (stored 0x{stored:08x}, computed 0x{computed:08x})")
        tag, version, width, flags, tpf, vocab, n, tokens, docs = struct.unpack_from("<8sHBBIIIQQ", payload, 0)
        if tag != META_TAG:
            raise self._fail("metadata", "bad tag")
        if version != self.format_version:
            raise self._fail("metadata", f"format version {version} differs from the header's {self.format_version}")
        if width != self.token_width or tpf != self.tokens_per_frame or flags != 0:
            raise self._fail("metadata", "token width, tokens per frame or flags differ from the header")
        if n != -(-tokens // tpf):
            raise self._fail("metadata", f"frame count {n} does not match {tokens} tokens at {tpf} per frame")
        if 40 + 16 * n + 8 + 4 > len(payload):
            raise self._fail("metadata", f"frame table of {n} frames does not fit")
        table = np.frombuffer(payload, dtype=[("offset", "<u8"), ("size", "<u4"), ("crc", "<u4")], count=n, offset=40)
        expected = 24
        for k in range(n):
            if int(table["offset"][k]) != expected:
                raise self._fail(f"frame {k}", f"starts at {int(table['offset'][k])}, expected {expected} (the frame table is contiguous)")
            expected += int(table["size"][k])
        if expected != meta_offset:
            raise self._fail("metadata", f"the last frame ends at {expected}, the metadata starts at {meta_offset}")
        (section,) = struct.unpack_from("<Q", payload, 40 + 16 * n)
        start = 48 + 16 * n
        if version == 1 and start + section + 4 != len(payload):
            raise self._fail("metadata", f"document-length section of {section} bytes does not fill the payload")
        if version >= 2 and start + section + 8 + 4 > len(payload):
            raise self._fail("metadata", f"document-length section of {section} bytes leaves no room for the tagged fields")
        lengths = _leb128_lengths(payload[start:start + section], docs, f"{self.path}: metadata")
        self.tokenizer = self._parse_tagged_fields(payload[start + section:-4]) if version >= 2 else None
        self.document_ends = np.cumsum(lengths, dtype=np.uint64)
        if docs and int(self.document_ends[-1]) != tokens:
            raise self._fail("metadata", f"document lengths add up to {int(self.document_ends[-1])}, the token count is {tokens}")
        if not docs and tokens:
            raise self._fail("metadata", f"{tokens} tokens but no document")
        self.vocabulary_size, self.frame_count = vocab, n
        self.token_count, self.document_count = tokens, docs
        self.frame_table = table

    def _parse_tagged_fields(self, b: bytes) -> str | None:
        """Format v2: u64 size, then entries (u16 tag, u32 length, value); unknown tags are skipped."""
        (size,) = struct.unpack_from("<Q", b, 0)
        if size != len(b) - 8:
            raise self._fail("metadata", f"tagged-field section says {size} bytes, {len(b) - 8} remain")
        pos, tokenizer = 8, None
        while pos < len(b):
            if pos + 6 > len(b):
                raise self._fail("metadata", "tagged field truncated")
            tag, length = struct.unpack_from("<HI", b, pos)
            pos += 6
            if pos + length > len(b):
                raise self._fail("metadata", f"tagged field {tag} of {length} bytes runs past the section")
            if tag == TAG_TOKENIZER:
                if tokenizer is not None:
                    raise self._fail("metadata", "tokenizer appears twice")
                try:
                    tokenizer = b[pos:pos + length].decode("utf-8")
                except UnicodeDecodeError:
                    raise self._fail("metadata", "tokenizer is not valid UTF-8") from None
            pos += length
        return tokenizer

    # -- reading -----------------------------------------------------------------------------------

    def frame(self, k: int) -> np.ndarray:
        """The tokens of data frame ``k`` (checked: CRC-32 of the compressed bytes, decompressed size).

        Raises:
            ShardError naming the file and frame.
        """
        cached = self._frames.get(k)
        if cached is not None:
            return cached
        if not 0 <= k < self.frame_count:
            raise IndexError(f"{self.path}: frame {k} of {self.frame_count}")
        offset, size, crc = (int(x) for x in self.frame_table[k])
        with open(self.path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
        computed = zlib.crc32(data)
        if computed != crc:
            raise self._fail(f"frame {k}", f"checksum mismatch (stored 0x{crc:08x}, computed 0x{computed:08x})")
        count = min(self.tokens_per_frame, self.token_count - k * self.tokens_per_frame)
        raw = _decompress(data, count * self.token_width, f"{self.path}: frame {k}")
        tokens = np.frombuffer(raw, dtype=self.dtype)
        self._frames[k] = tokens
        return tokens

    def tokens(self, start: int, stop: int) -> np.ndarray:
        """Tokens ``[start, stop)`` of the shard's stream (decompressing only the frames needed)."""
        if not 0 <= start <= stop <= self.token_count:
            raise IndexError(f"{self.path}: tokens [{start}, {stop}) are outside [0, {self.token_count})")
        if start == stop:
            return np.empty(0, dtype=self.dtype)
        T = self.tokens_per_frame
        parts = []
        for k in range(start // T, (stop - 1) // T + 1):
            f = self.frame(k)
            lo = max(start - k * T, 0)
            hi = min(stop - k * T, len(f))
            parts.append(f[lo:hi])
        return np.concatenate(parts)

    def all_tokens(self) -> np.ndarray:
        """The whole token stream."""
        return self.tokens(0, self.token_count)

    def document_of(self, token: int) -> int:
        """Index of the document that holds token ``token``."""
        if not 0 <= token < self.token_count:
            raise IndexError(f"{self.path}: token {token} is outside [0, {self.token_count})")
        return int(np.searchsorted(self.document_ends, np.uint64(token), side="right"))

    def document_range(self, index: int) -> tuple[int, int]:
        """Token range ``[start, end)`` of document ``index``."""
        end = int(self.document_ends[index])
        start = int(self.document_ends[index - 1]) if index else 0
        return start, end

    def __repr__(self) -> str:
        return (f"Shard({self.path!r}, uint{8 * self.token_width}, vocab {self.vocabulary_size}, "
                f"{self.token_count} tokens, {self.document_count} documents, {self.frame_count} frames)")
