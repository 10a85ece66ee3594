"""q4f16_awq: AutoAWQ checkpoints, kept as they are (qweight, qzeros, scales), fused along N.

Nothing is quantized here: AWQ weights come pre-quantized (--source-format awq). The nibble order is
llmc.quant.layout.AWQ_ORDER.
"""
from __future__ import annotations

import numpy as np

from llmc.errors import UserError
from llmc.families.base import Param
from llmc.quant.base import Choice, Tensor, as_stored, float_tensor, read_float, stem
from llmc.quant.layout import Scheme

KIND = "awq"


def is_quantized(p: Param, s: Scheme) -> bool:
    return p.kind == "linear"


def tensors(p: Param, s: Scheme) -> list[Tensor]:
    if not is_quantized(p, s):
        return [float_tensor(p, s.model_dtype)]
    n, k = p.shape
    b = stem(p.name)
    if k % s.group_size or n % s.per_word:
        raise UserError(f"{p.name} {p.shape} does not fit AWQ groups of {s.group_size}")
    return [Tensor(f"{b}.qweight", (k, n // s.per_word), "uint32", p.name, "qweight"),
            Tensor(f"{b}.qzeros", (k // s.group_size, n // s.per_word), "uint32", p.name, "qzeros"),
            Tensor(f"{b}.scales", (k // s.group_size, n), s.model_dtype, p.name, "scales")]


def convert(p: Param, reader, s: Scheme, choice: Choice) -> list[tuple[Tensor, np.ndarray]]:
    """AutoAWQ tensors, fused along the output axis; int32 words are kept bit for bit as uint32 (nothing
    to choose: the checkpoint's codes are kept)."""
    outs = tensors(p, s)
    if not is_quantized(p, s):
        return as_stored(outs[0], read_float(reader, p))
    bases = [stem(name) for name in p.hf]
    arrays = []
    for t in outs:
        parts = [np.asarray(reader.raw(f"{b}.{t.role}") if hasattr(reader, "raw") else reader.get(f"{b}.{t.role}"))
                 for b in bases]
        joined = np.concatenate(parts, axis=1)
        joined = joined.view(np.uint32) if t.dtype == "uint32" else joined.astype(t.dtype)
        arrays.append((t, np.ascontiguousarray(joined)))
    return arrays
