"""Quantization schemes: MLC's names, one module per scheme kind (none, group, awq) behind one interface.

A kind module has KIND, is_quantized(param, scheme), tensors(param, scheme) (what convert_weight stores
and the library takes) and convert(param, reader, scheme, choice) (the stored arrays, from the source;
choice says how codes are picked and collects their error).
The bit layouts are in llmc.quant.layout.
"""
from __future__ import annotations

from types import ModuleType

import numpy as np

from llmc.errors import UserError
from llmc.families.base import Param
from llmc.quant import awq, group, none
from llmc.quant.base import Choice, Tensor
from llmc.quant.layout import AWQ_ORDER, Scheme

KINDS: dict[str, ModuleType] = {m.KIND: m for m in (none, group, awq)}
FLOAT16_HEAD = Scheme("float16 embedding and output", "none", "float16")


def _head8(dtype: str) -> Scheme:
    return Scheme(f"8-bit embedding and output ({dtype} scales)", "group", dtype, 8, 32, "NK")


SCHEMES = {s.name: s for s in (
    Scheme("q0f16", "none", "float16"),
    Scheme("q0f32", "none", "float32"),
    Scheme("q3f16_0", "group", "float16", 3, 40, "KN"),
    Scheme("q3f16_1", "group", "float16", 3, 40, "NK"),
    Scheme("q4f16_0", "group", "float16", 4, 32, "KN"),
    Scheme("q4f16_1", "group", "float16", 4, 32, "NK"),
    Scheme("q4f32_1", "group", "float32", 4, 32, "NK"),
    Scheme("q4f16_awq", "awq", "float16", 4, 128, "KN"),
    # MLC's q4f16_2: the embedding and the output layer stay float16
    Scheme("q4f16_2", "group", "float16", 4, 32, "NK", head=FLOAT16_HEAD),
    # llmc's own: the embedding and the output layer at 8 bits (llama.cpp's mixes give them 6-8)
    Scheme("q4f16_1h8", "group", "float16", 4, 32, "NK", head=_head8("float16")),
    Scheme("q4f32_1h8", "group", "float32", 4, 32, "NK", head=_head8("float32")),
    Scheme("q3f16_1h8", "group", "float16", 3, 40, "NK", head=_head8("float16")),
)}
ALIASES = {"q4f16_autoawq": "q4f16_awq"}


def scheme(name: str) -> Scheme:
    name = ALIASES.get(name, name)
    if name not in SCHEMES:
        known = ", ".join(sorted(SCHEMES) + sorted(ALIASES))
        raise UserError(f"unknown quantization {name!r}; known: {known}")
    return SCHEMES[name]


def kind(s: Scheme) -> ModuleType:
    return KINDS[s.kind]


def is_quantized(p: Param, s: Scheme) -> bool:
    s = s.for_kind(p.kind)
    return kind(s).is_quantized(p, s)


def tensors(p: Param, s: Scheme) -> list[Tensor]:
    s = s.for_kind(p.kind)
    return kind(s).tensors(p, s)


def spec(params: list[Param], s: Scheme) -> list[Tensor]:
    return [t for p in params for t in tensors(p, s)]


def convert(p: Param, reader, s: Scheme, choice: Choice | None = None) -> list[tuple[Tensor, np.ndarray]]:
    """The stored tensors of one parameter, read from a source reader."""
    s = s.for_kind(p.kind)
    return kind(s).convert(p, reader, s, choice if choice is not None else Choice())


def param_count(params: list[Param]) -> int:
    return sum(int(np.prod(p.shape)) for p in params)


__all__ = ["ALIASES", "AWQ_ORDER", "Choice", "KINDS", "SCHEMES", "Scheme", "Tensor", "convert", "is_quantized", "kind",
           "param_count", "scheme", "spec", "tensors"]
