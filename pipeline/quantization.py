"""Quantization schemes with MLC's numerics and bit layouts, in vectorized numpy.

Group quantization (q3f16_*, q4f16_*, q4f32_1): per group of `group_size`
values along K (the input axis), scale = max|w| / max_int in the model dtype,
q = clamp(round(w / scale + max_int), 0, 2 * max_int), packed least
significant first, 32 // bits values per uint32. K is padded with q = 0 to
whole groups. `_1` stores linear weights NK, `_0` stores them KN; embeddings
are NK in both. The order of casts and roundings follows MLC's TIR exactly
(cast to the model dtype first; every operation rounded in that dtype).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .models.base import Param


@dataclass(frozen=True)
class Scheme:
    name: str
    kind: str                 # "none", "group" or "awq"
    model_dtype: str          # "float16" or "float32"
    bits: int = 0
    group_size: int = 0
    layout: str = "NK"        # linear weight layout of group schemes

    @property
    def per_word(self) -> int:
        return 32 // self.bits

    @property
    def max_int(self) -> int:
        return 2 ** (self.bits - 1) - 1

    def groups(self, k: int) -> int:
        return -(-k // self.group_size)

    def words(self, k: int) -> int:
        return self.groups(k) * self.group_size // self.per_word


SCHEMES = {s.name: s for s in (
    Scheme("q0f16", "none", "float16"),
    Scheme("q0f32", "none", "float32"),
    Scheme("q3f16_0", "group", "float16", 3, 40, "KN"),
    Scheme("q3f16_1", "group", "float16", 3, 40, "NK"),
    Scheme("q4f16_0", "group", "float16", 4, 32, "KN"),
    Scheme("q4f16_1", "group", "float16", 4, 32, "NK"),
    Scheme("q4f32_1", "group", "float32", 4, 32, "NK"),
    Scheme("q4f16_awq", "awq", "float16", 4, 128, "KN"),
)}
ALIASES = {"q4f16_autoawq": "q4f16_awq"}
AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # AutoAWQ: nibble i holds element AWQ_ORDER[i] of 8


def scheme(name: str) -> Scheme:
    name = ALIASES.get(name, name)
    if name not in SCHEMES:
        known = ", ".join(sorted(SCHEMES) + sorted(ALIASES))
        raise UserError(f"unknown quantization {name!r}; known: {known}")
    return SCHEMES[name]


@dataclass(frozen=True)
class Tensor:
    """One stored tensor: what the weights index and the model library agree on."""
    name: str
    shape: tuple[int, ...]
    dtype: str
    param: str   # the float Param it comes from
    role: str    # "weight", "q_weight", "q_scale", "qweight", "qzeros", "scales"


def _base(name: str) -> str:
    return name[: -len(".weight")] if name.endswith(".weight") else name


def is_quantized(p: Param, s: Scheme) -> bool:
    if s.kind == "group":
        return p.kind in ("linear", "final_fc", "embedding")
    if s.kind == "awq":
        return p.kind == "linear"
    return False


def tensors(p: Param, s: Scheme) -> list[Tensor]:
    if not is_quantized(p, s):
        return [Tensor(p.name, p.shape, p.dtype or s.model_dtype, p.name, "weight")]
    n, k = p.shape
    b = _base(p.name)
    if s.kind == "awq":
        if k % s.group_size or n % s.per_word:
            raise UserError(f"{p.name} {p.shape} does not fit AWQ groups of {s.group_size}")
        return [Tensor(f"{b}.qweight", (k, n // s.per_word), "uint32", p.name, "qweight"),
                Tensor(f"{b}.qzeros", (k // s.group_size, n // s.per_word), "uint32", p.name, "qzeros"),
                Tensor(f"{b}.scales", (k // s.group_size, n), s.model_dtype, p.name, "scales")]
    words, groups = s.words(k), s.groups(k)
    if s.layout == "KN" and p.kind != "embedding":
        return [Tensor(f"{b}.q_weight", (words, n), "uint32", p.name, "q_weight"),
                Tensor(f"{b}.q_scale", (groups, n), s.model_dtype, p.name, "q_scale")]
    return [Tensor(f"{b}.q_weight", (n, words), "uint32", p.name, "q_weight"),
            Tensor(f"{b}.q_scale", (n, groups), s.model_dtype, p.name, "q_scale")]


def spec(params: list[Param], s: Scheme) -> list[Tensor]:
    return [t for p in params for t in tensors(p, s)]


def param_count(params: list[Param]) -> int:
    return sum(int(np.prod(p.shape)) for p in params)


# ---- group quantization -----------------------------------------------------------------
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
    return _pack(vals, s.bits, s.per_word), scale


def _pack(vals: np.ndarray, bits: int, per_word: int, order=None) -> np.ndarray:
    n, m = vals.shape
    v = vals.reshape(n, m // per_word, per_word)
    words = np.zeros((n, m // per_word), np.uint32)
    for slot in range(per_word):
        element = order[slot] if order else slot
        words |= v[:, :, element] << np.uint32(slot * bits)
    return words


def group_dequantize(q: np.ndarray, scale: np.ndarray, s: Scheme, k: int) -> np.ndarray:
    """NK (q_weight, q_scale) -> [N, K] in the model dtype, exactly as the model library computes it."""
    dt = np.dtype(s.model_dtype)
    n = q.shape[0]
    shifts = (np.arange(s.per_word, dtype=np.uint32) * s.bits)
    vals = (q[:, :, None] >> shifts) & np.uint32((1 << s.bits) - 1)
    vals = vals.reshape(n, -1)[:, :k].astype(dt)
    sc = np.repeat(scale, s.group_size, axis=1)[:, :k]
    return ((vals - dt.type(s.max_int)) * sc).astype(dt)


def quantize(p: Param, w: np.ndarray, s: Scheme) -> list[tuple[Tensor, np.ndarray]]:
    """The stored tensors of one float parameter."""
    outs = tensors(p, s)
    if not is_quantized(p, s):
        return [(outs[0], np.ascontiguousarray(w, dtype=outs[0].dtype))]
    if s.kind != "group":
        raise UserError(f"{s.name} needs a pre-quantized checkpoint (--source-format awq)")
    q, scale = group_quantize(w, s)
    if outs[0].shape != q.shape:  # KN layout
        q, scale = np.ascontiguousarray(q.T), np.ascontiguousarray(scale.T)
    return [(outs[0], q), (outs[1], scale)]


def awq_unpack(qweight: np.ndarray) -> np.ndarray:
    """AutoAWQ-packed [K, N/8] -> [K, N] integers (AWQ_ORDER nibble order)."""
    k, w = qweight.shape
    words = qweight.view(np.uint32)
    out = np.empty((k, w, 8), np.uint32)
    for slot, element in enumerate(AWQ_ORDER):
        out[:, :, element] = (words >> np.uint32(4 * slot)) & np.uint32(0xF)
    return out.reshape(k, w * 8)
