"""Group quantization (q3f16_*, q4f16_*, q4f32_1) with MLC's numerics, in vectorized numpy.

The order of casts and roundings follows MLC's TIR exactly (cast to the model dtype first; every
operation rounded in that dtype). The bit layout is llmc.quant.layout's.
"""
from __future__ import annotations

import numpy as np

from llmc.families.base import Param
from llmc.quant.base import Tensor, as_stored, float_tensor, read_float, stem
from llmc.quant.layout import Scheme

KIND = "group"


def is_quantized(p: Param, s: Scheme) -> bool:
    return p.kind in ("linear", "final_fc", "embedding")


def tensors(p: Param, s: Scheme) -> list[Tensor]:
    if not is_quantized(p, s):
        return [float_tensor(p, s.model_dtype)]
    n, k = p.shape
    b = stem(p.name)
    words, groups = s.words(k), s.groups(k)
    if s.layout == "KN" and p.kind != "embedding":
        return [Tensor(f"{b}.q_weight", (words, n), "uint32", p.name, "q_weight"),
                Tensor(f"{b}.q_scale", (groups, n), s.model_dtype, p.name, "q_scale")]
    return [Tensor(f"{b}.q_weight", (n, words), "uint32", p.name, "q_weight"),
            Tensor(f"{b}.q_scale", (n, groups), s.model_dtype, p.name, "q_scale")]


def convert(p: Param, reader, s: Scheme) -> list[tuple[Tensor, np.ndarray]]:
    outs = tensors(p, s)
    w = read_float(reader, p)
    if not is_quantized(p, s):
        return as_stored(outs[0], w)
    q, scale = group_quantize(w, s)
    if outs[0].shape != q.shape:  # KN layout
        q, scale = np.ascontiguousarray(q.T), np.ascontiguousarray(scale.T)
    return [(outs[0], q), (outs[1], scale)]


_ROWS_PER_CHUNK_ELEMS = 1 << 22


def group_quantize(w: np.ndarray, s: Scheme) -> tuple[np.ndarray, np.ndarray]:
    """[N, K] float -> (q_weight [N, words] uint32, q_scale [N, groups]) in NK layout."""
    n, k = w.shape
    q = np.empty((n, s.words(k)), np.uint32)
    scale = np.empty((n, s.groups(k)), s.model_dtype)
    rows = max(1, _ROWS_PER_CHUNK_ELEMS // max(k, 1))
    for r in range(0, n, rows):
        q[r:r + rows], scale[r:r + rows] = _quantize_rows(w[r:r + rows], s)
    return q, scale


def _round_f16(a: np.ndarray) -> np.ndarray:
    """Round float32 values in place to float16 precision (round half to even), for values in
    float16's normal range: what a float16 operation would store. Much faster than astype."""
    bits = a.view(np.uint32)
    bits += np.uint32(0x0FFF) + ((bits >> np.uint32(13)) & np.uint32(1))
    bits &= np.uint32(0xFFFFE000)
    return a


def _quantize_rows(w: np.ndarray, s: Scheme) -> tuple[np.ndarray, np.ndarray]:
    dt = np.dtype(s.model_dtype)
    half = dt == np.float16
    n, k = w.shape
    g, gs = s.groups(k), s.group_size
    # float16 arithmetic done in float32, rounded to float16 after every operation: a float32
    # result rounded to float16 is the correctly rounded float16 result for + - * /.
    padded = np.zeros((n, g * gs), np.float32)
    src = np.asarray(w)
    padded[:, :k] = src.astype(dt) if src.dtype != dt else src  # cast to the model dtype first, as MLC
    grouped = padded.reshape(n, g, gs)
    max_int = np.float32(s.max_int)
    scale = (np.abs(grouped).max(axis=2) / max_int).astype(dt)
    with np.errstate(divide="ignore", invalid="ignore"):
        x = grouped / scale.astype(np.float32)[:, :, None]
    # 0/0 in an all-zero group: TIR's compare-and-select max/min turn the NaN into q = 0.
    x[~np.isfinite(x)] = -max_int
    if half:
        _round_f16(x)  # |x| <= max_int: tiny values round differently but cannot move x + max_int
    x += max_int
    if half:
        _round_f16(x)
    np.round(x, out=x)
    np.clip(x, 0, 2 * max_int, out=x)
    vals = x.reshape(n, g * gs).astype(np.uint32)
    vals[:, k:] = 0
    return pack(vals, s), scale


def pack(vals: np.ndarray, s: Scheme) -> np.ndarray:
    """[N, M] integers -> [N, M / per_word] uint32 words, element k at bit s.shift(k) of word k // per_word."""
    n, m = vals.shape
    v = vals.reshape(n, m // s.per_word, s.per_word)
    words = np.zeros((n, m // s.per_word), np.uint32)
    for element in range(s.per_word):
        words |= v[:, :, element] << np.uint32(s.shift(element))
    return words
