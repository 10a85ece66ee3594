"""Canonical msgpack: the same value always encodes to the same bytes.

Maps are written with sorted keys, tuples as lists, and floats are refused:
their text or binary forms are where platforms and libraries disagree, and a
key that differs by a rounding digit is a silent cache miss.
"""
from __future__ import annotations

from typing import Any

import msgpack
import xxhash


class NotCanonical(TypeError):
    pass


def normalize(value: Any, where: str = "$") -> Any:
    if value is None or isinstance(value, (bool, int, str, bytes)):
        return value
    if isinstance(value, float):
        raise NotCanonical(f"float at {where}: encode it as a string or integer")
    if isinstance(value, (list, tuple)):
        return [normalize(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k in sorted(value, key=_sort_key):
            if not isinstance(k, str):
                raise NotCanonical(f"non-string key {k!r} at {where}")
            out[k] = normalize(value[k], f"{where}.{k}")
        return out
    raise NotCanonical(f"{type(value).__name__} at {where} has no canonical form")


def _sort_key(k: Any) -> Any:
    return k if isinstance(k, str) else str(k)


def packb(value: Any) -> bytes:
    return msgpack.packb(normalize(value), use_bin_type=True)


def unpackb(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def packb_loose(value: Any) -> bytes:
    """msgpack for records that are stored but never hashed into a key (provenance)."""
    return msgpack.packb(value, use_bin_type=True, default=str)


def key_of(value: Any) -> str:
    """32-hex xxh3-128 of the canonical encoding: the form of action keys."""
    return xxhash.xxh3_128_hexdigest(packb(value))
