"""Content digests: ``xxh128:<32 hex>:<size>``.

The size travels inside the digest so that a reader can reject a truncated
object with a stat call, before hashing anything (as REAPI digests do).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import xxhash

ALGORITHM = "xxh128"
CHUNK = 8 << 20
HASH_BUFFER = 1 << 20
_DIGEST_RE = re.compile(r"^xxh128:([0-9a-f]{32}):([0-9]+)$")


class BadDigest(ValueError):
    pass


def make(hex_value: str, size: int) -> str:
    return f"{ALGORITHM}:{hex_value}:{size}"


def of_bytes(data: bytes) -> str:
    return make(xxhash.xxh3_128_hexdigest(data), len(data))


def hasher():
    return xxhash.xxh3_128()


def of_file(path: str | os.PathLike) -> str:
    # One reused buffer: a new bytes object per chunk costs fresh pages each time (a 7B source is hashed
    # a third faster this way).
    h = hasher()
    size = 0
    buffer = bytearray(HASH_BUFFER)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            h.update(view[:n])
            size += n
    return make(h.hexdigest(), size)


def parse(digest: str) -> tuple[str, int]:
    """Return (hex, size) of a digest string, or raise BadDigest."""
    m = _DIGEST_RE.match(digest)
    if not m:
        raise BadDigest(f"not an {ALGORITHM} digest: {digest!r}")
    return m.group(1), int(m.group(2))


def size_of(digest: str) -> int:
    return parse(digest)[1]


def is_digest(text: str) -> bool:
    return bool(_DIGEST_RE.match(text))


def object_name(digest: str) -> Path:
    """Relative path of an object in a fanned-out folder: ``ab/abcdef..._<size>``."""
    hex_value, size = parse(digest)
    return Path(hex_value[:2]) / f"{hex_value}_{size}"
