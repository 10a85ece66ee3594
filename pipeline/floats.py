"""Floats in cache keys: written as exact text ("float:1e-05"), since canonical keys refuse floats."""
from __future__ import annotations

PREFIX = "float:"


def to_key(value):
    if isinstance(value, float):
        return PREFIX + repr(value)
    if isinstance(value, dict):
        return {k: to_key(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_key(v) for v in value]
    return value


def from_key(value):
    if isinstance(value, str) and value.startswith(PREFIX):
        return float(value[len(PREFIX):])
    if isinstance(value, dict):
        return {k: from_key(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_key(v) for v in value]
    return value
