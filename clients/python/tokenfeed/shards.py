"""A small reader and writer of tokenfeed shard files (format version 3), written from docs/SHARDS.md alone.

    shard = Shard("web/part_00000.zst")
    shard.token_count, shard.document_count, shard.token_width, shard.vocabulary_size
    shard.tokenizer                   # the tokenizer's name, or None when unknown
    shard.tokens(1000, 1064)          # numpy array of the tokens [1000, 1064)
    shard.document_of(1000)           # index of the document holding token 1000

    write_shard("out/a.zst", [[1, 2, 3], [4, 5]], token_width=2, tokens_per_frame=1 << 20, tokenizer="gpt2")

Opening reads the header, the footer and the (small) metadata frame, checking tags, versions and the
metadata CRC-32. The frame table and the document ends are read page by page (pages of at most 4 KiB
in the index frame, each with its own CRC-32) when needed. Each data frame's CRC-32 is checked before
it is decompressed. Frames are (de)compressed with the ``zstandard`` package when it is installed,
else with the ``zstd`` command. Version 1 and 2 shards are refused: ``tokenfeed shard upgrade DIR``.
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
INDEX_TAG = b"TFINDEX\0"
FORMAT_VERSION = 3
TAG_TOKENIZER = 1  # tagged-field section: the tokenizer's name, UTF-8
FRAMES_PER_PAGE = 255  # frame-table page: 255 × (u64 offset, u32 size, u32 CRC-32), then a CRC-32
ENDS_PER_PAGE = 510  # document-end page: u64 previous end, 510 × u64 end, then a CRC-32
METADATA_FIXED = 64
METADATA_LAYOUT = "<8sHBBIIIQQIIQII"  # tag … reserved: the 64 fixed bytes

try:  # optional
    import zstandard as _zstandard  # type: ignore
except ImportError:  # pragma: no cover - depends on the machine
    _zstandard = None


class ShardError(Exception):
    """A shard file is malformed; the message names the file and the part (header, frame k, …)."""


def _zstd(args: list[str], data: bytes, where: str) -> bytes:
    zstd = shutil.which("zstd")
    if zstd is None:
        raise ShardError(f"{where}: neither the zstandard package nor the zstd command is available")
    proc = subprocess.run([zstd, *args], input=data, capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise ShardError(f"{where}: zstd {' '.join(args)} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def _decompress(data: bytes, expected_size: int, where: str) -> bytes:
    if _zstandard is not None:
        try:
            out = _zstandard.ZstdDecompressor().decompress(data, max_output_size=expected_size)
        except _zstandard.ZstdError as e:
            raise ShardError(f"{where}: zstd: {e}") from None
    else:
        out = _zstd(["-dc", "-q"], data, where)
    if len(out) != expected_size:
        raise ShardError(f"{where}: decompressed to {len(out)} bytes, expected {expected_size}")
    return out


def _compress(data: bytes, level: int) -> bytes:
    if _zstandard is not None:
        return _zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True).compress(data)
    return _zstd([f"-{level}", "-c", "-q", "--check", f"--stream-size={len(data)}"], data, "zstd")


def _section_bytes(count: int, per_page: int, entry: int, prefix: int) -> int:
    pages = -(-count // per_page)
    return count * entry + pages * (prefix + 4)


class Shard:
    """One shard file, opened and checked (header, footer, metadata); index pages and data frames are
    read on demand.

    Raises:
        ShardError naming the file and the part that is wrong.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self._frames: dict[int, np.ndarray] = {}
        self._pages: dict[tuple[str, int], np.ndarray] = {}
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
        if version in (1, 2):
            folder = os.path.dirname(self.path) or "."
            raise self._fail("version", f"format version {version} shard: this reader reads version {FORMAT_VERSION}; "
                                        f"run `tokenfeed shard upgrade {folder}`")
        if version != FORMAT_VERSION:
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
        if len(payload) < METADATA_FIXED + 8 + 4:
            raise self._fail("metadata", f"payload of {len(payload)} bytes is too short")
        (stored,) = struct.unpack_from("<I", payload, len(payload) - 4)
        computed = zlib.crc32(payload[:-4])
        if stored != computed:
            raise self._fail("metadata", f"checksum mismatch (stored 0x{stored:08x}, computed 0x{computed:08x})")
        (tag, version, width, flags, tpf, vocab, n, tokens, docs, largest, table_crc, index_offset, ends_crc,
         _reserved) = struct.unpack_from(METADATA_LAYOUT, payload, 0)
        if tag != META_TAG:
            raise self._fail("metadata", "bad tag")
        if version != self.format_version:
            raise self._fail("metadata", f"format version {version} differs from the header's {self.format_version}")
        if width != self.token_width or tpf != self.tokens_per_frame or flags != 0:
            raise self._fail("metadata", "token width, tokens per frame or flags differ from the header")
        if n != -(-tokens // tpf):
            raise self._fail("token_count", f"frame count {n} does not match {tokens} tokens at {tpf} per frame")
        if docs > tokens or (tokens and not docs):
            raise self._fail("document_count", f"{docs} documents cannot hold {tokens} tokens")
        table_bytes = _section_bytes(n, FRAMES_PER_PAGE, 16, 0)
        ends_bytes = _section_bytes(docs, ENDS_PER_PAGE, 8, 8)
        if index_offset < 24 or index_offset + 16 + table_bytes + ends_bytes != meta_offset:
            raise self._fail("index_offset", f"an index of {n} frames and {docs} documents at {index_offset} does not end "
                                             f"where the metadata starts ({meta_offset})")
        if (n == 0) != (largest == 0) or largest > index_offset - 24:
            raise self._fail("largest_frame", f"{largest} bytes")
        self.tokenizer = self._parse_tagged_fields(payload[METADATA_FIXED:-4])
        self.vocabulary_size, self.frame_count = vocab, n
        self.token_count, self.document_count = tokens, docs
        self.largest_frame, self.index_offset = largest, index_offset
        self.frame_table_checksum, self.document_ends_checksum = table_crc, ends_crc
        self._sections = {"frame_table": (index_offset + 16, n, FRAMES_PER_PAGE, 16, 0),
                          "document_ends": (index_offset + 16 + table_bytes, docs, ENDS_PER_PAGE, 8, 8)}

    def _parse_tagged_fields(self, b: bytes) -> str | None:
        """u64 size, then entries (u16 tag, u32 length, value); unknown tags are skipped."""
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

    # -- index pages -------------------------------------------------------------------------------

    def _page(self, section: str, p: int) -> np.ndarray:
        """Page ``p`` of ``section`` ("frame_table" or "document_ends"), CRC-checked: for frames a
        structured array (offset, size, crc); for ends the previous end followed by the page's ends."""
        cached = self._pages.get((section, p))
        if cached is not None:
            return cached
        start, count, per, entry, prefix = self._sections[section]
        first = p * per
        if not 0 <= first < count:
            raise IndexError(f"{self.path}: {section} page {p}")
        entries = min(per, count - first)
        size = prefix + entries * entry + 4
        with open(self.path, "rb") as f:
            f.seek(start + p * (prefix + per * entry + 4))
            data = f.read(size)
        where = f"index: {section} page {p}"
        if len(data) != size:
            raise self._fail(where, f"file ends inside the page ({len(data)} of {size} bytes)")
        (stored,) = struct.unpack_from("<I", data, size - 4)
        if zlib.crc32(data[:-4]) != stored:
            raise self._fail(where, f"checksum mismatch (stored 0x{stored:08x}, computed 0x{zlib.crc32(data[:-4]):08x})")
        if section == "frame_table":
            page = np.frombuffer(data, dtype=[("offset", "<u8"), ("size", "<u4"), ("crc", "<u4")], count=entries)
            ends = page["offset"].astype(np.int64) + page["size"]
            if (page["size"] == 0).any() or (page["offset"] < 24).any() or (ends > self.index_offset).any() \
                    or (page["offset"][1:].astype(np.int64) != ends[:-1]).any():
                raise self._fail(where, "frames are empty, overlap or lie outside the data frames")
        else:
            page = np.frombuffer(data, dtype="<u8", count=entries + 1)
            if (page[1:] <= page[:-1]).any() or int(page[-1]) > self.token_count or (first == 0 and page[0] != 0):
                raise self._fail(where, "document ends do not increase within the token count")
            if first + entries == count and int(page[-1]) != self.token_count:
                raise self._fail(where, f"the last document ends at {int(page[-1])}, token_count is {self.token_count}")
        self._pages[(section, p)] = page
        return page

    def frame_entry(self, k: int) -> tuple[int, int, int]:
        """Frame ``k``'s (offset, compressed size, CRC-32)."""
        if not 0 <= k < self.frame_count:
            raise IndexError(f"{self.path}: frame {k} of {self.frame_count}")
        return tuple(int(x) for x in self._page("frame_table", k // FRAMES_PER_PAGE)[k % FRAMES_PER_PAGE])

    def document_end(self, d: int) -> int:
        """End (exclusive, in tokens) of document ``d``."""
        if not 0 <= d < self.document_count:
            raise IndexError(f"{self.path}: document {d} of {self.document_count}")
        return int(self._page("document_ends", d // ENDS_PER_PAGE)[d % ENDS_PER_PAGE + 1])

    @property
    def document_ends(self) -> np.ndarray:
        """Every document end (reads every document-end page)."""
        pages = [self._page("document_ends", p)[1:] for p in range(-(-self.document_count // ENDS_PER_PAGE))]
        return np.concatenate(pages).astype(np.uint64) if pages else np.empty(0, dtype=np.uint64)

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
        offset, size, crc = self.frame_entry(k)
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
        lo, hi = 0, -(-self.document_count // ENDS_PER_PAGE) - 1
        while lo < hi:  # the first page whose last end is above the token
            mid = (lo + hi) // 2
            if int(self._page("document_ends", mid)[-1]) <= token:
                lo = mid + 1
            else:
                hi = mid
        page = self._page("document_ends", lo)
        return lo * ENDS_PER_PAGE + int(np.searchsorted(page[1:], np.uint64(token), side="right"))

    def document_range(self, index: int) -> tuple[int, int]:
        """Token range ``[start, end)`` of document ``index``."""
        end = self.document_end(index)
        page = self._page("document_ends", index // ENDS_PER_PAGE)
        return int(page[index % ENDS_PER_PAGE]), end

    def __repr__(self) -> str:
        return (f"Shard({self.path!r}, uint{8 * self.token_width}, vocab {self.vocabulary_size}, "
                f"{self.token_count} tokens, {self.document_count} documents, {self.frame_count} frames)")


def write_shard(path: str | os.PathLike, documents, token_width: int = 4, tokens_per_frame: int = 1 << 20,
                vocabulary_size: int | None = None, tokenizer: str | None = None, level: int = 3) -> None:
    """Writes ``documents`` (sequences of token ids) as a format version 3 shard at ``path`` (through
    ``path.partial``, renamed into place). ``vocabulary_size`` defaults to the largest id + 1.

    Raises:
        ValueError for an empty document or ids that do not fit the width or the vocabulary.
    """
    path = os.fspath(path)
    dtype = np.dtype("<u2" if token_width == 2 else "<u4")
    docs = [np.asarray(d, dtype=np.int64) for d in documents]
    if any(len(d) == 0 for d in docs):
        raise ValueError("every document holds at least one token")
    flat = np.concatenate(docs) if docs else np.empty(0, dtype=np.int64)
    if len(flat) and (flat.min() < 0 or flat.max() > np.iinfo(dtype).max):
        raise ValueError(f"token ids must fit in uint{8 * token_width}")
    vocab = vocabulary_size if vocabulary_size is not None else (int(flat.max()) + 1 if len(flat) else 0)
    if len(flat) and flat.max() >= vocab:
        raise ValueError(f"token id {int(flat.max())} is not below the vocabulary size {vocab}")
    tokens = flat.astype(dtype).tobytes()
    ends = np.cumsum([len(d) for d in docs], dtype=np.uint64)
    out = bytearray(struct.pack("<II8sHBBI", SKIPPABLE_MAGIC, 16, HEADER_TAG, FORMAT_VERSION, token_width, 0, tokens_per_frame))
    frames = []
    step = tokens_per_frame * token_width
    for start in range(0, len(tokens), step):
        data = _compress(tokens[start:start + step], level)
        frames.append((len(out), len(data), zlib.crc32(data)))
        out += data
    index_offset = len(out)
    table, ends_section = bytearray(), bytearray()
    table_crc = ends_crc = 0  # section checksums: the pages' bytes without their own CRCs
    for p in range(0, len(frames), FRAMES_PER_PAGE):
        page = b"".join(struct.pack("<QII", *f) for f in frames[p:p + FRAMES_PER_PAGE])
        table_crc = zlib.crc32(page, table_crc)
        table += page + struct.pack("<I", zlib.crc32(page))
    for p in range(0, len(ends), ENDS_PER_PAGE):
        page = struct.pack("<Q", int(ends[p - 1]) if p else 0) + ends[p:p + ENDS_PER_PAGE].astype("<u8").tobytes()
        ends_crc = zlib.crc32(page, ends_crc)
        ends_section += page + struct.pack("<I", zlib.crc32(page))
    out += struct.pack("<II", SKIPPABLE_MAGIC, 8 + len(table) + len(ends_section)) + INDEX_TAG + table + ends_section
    fields = b""
    if tokenizer is not None:
        name = tokenizer.encode("utf-8")
        fields = struct.pack("<HI", TAG_TOKENIZER, len(name)) + name
    payload = struct.pack(METADATA_LAYOUT, META_TAG, FORMAT_VERSION, token_width, 0, tokens_per_frame, vocab, len(frames),
                          len(flat), len(docs), max((f[1] for f in frames), default=0), table_crc, index_offset, ends_crc, 0)
    payload += struct.pack("<Q", len(fields)) + fields
    payload += struct.pack("<I", zlib.crc32(payload))
    meta_offset = len(out)
    out += struct.pack("<II", SKIPPABLE_MAGIC, len(payload)) + payload
    out += struct.pack("<II8sQQ", SKIPPABLE_MAGIC, 24, FOOTER_TAG, meta_offset, 8 + len(payload))
    with open(path + ".partial", "wb") as f:
        f.write(out)
    os.replace(path + ".partial", path)
