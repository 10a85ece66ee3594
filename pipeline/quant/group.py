"""Group quantization (q3f16_*, q4f16_*, q4f32_1): C kernels (_group.c) over row ranges on threads.

Two ways to choose the codes, one format (llmc.quant.layout's): "search" (the default) picks each
group's scale and codes for the least weighted squared error (llmc.quant.search, whose numpy version is
the reference of the C); "mlc" is MLC's rule, byte-identical to MLC's convert_weight: the order of casts
and roundings follows MLC's TIR exactly (cast to the model dtype first; every operation rounded in that
dtype), in numpy here and in C with the same bytes.
"""
from __future__ import annotations

import concurrent.futures
import functools
import os

import numpy as np

from llmc.errors import NotAvailable
from llmc.families.base import Param
from llmc.quant import search
from llmc.quant.base import Choice, Tensor, as_stored, float_tensor, read_float, read_parts, stem
from llmc.quant.layout import Scheme

KIND = "group"


def is_quantized(p: Param, s: Scheme) -> bool:
    return p.kind in ("linear", "final_fc", "embedding", "experts")


def tensors(p: Param, s: Scheme) -> list[Tensor]:
    if not is_quantized(p, s):
        return [float_tensor(p, s.model_dtype)]
    *lead, k = p.shape
    b = stem(p.name)
    words, groups = s.words(k), s.groups(k)
    if p.kind == "experts":  # stacked [E, n, k]: every layout stores each expert NK, as MLC's MoE kernels read
        return [Tensor(f"{b}.q_weight", (*lead, words), "uint32", p.name, "q_weight"),
                Tensor(f"{b}.q_scale", (*lead, groups), s.model_dtype, p.name, "q_scale")]
    (n,) = lead
    if s.layout == "KN" and p.kind != "embedding":
        return [Tensor(f"{b}.q_weight", (words, n), "uint32", p.name, "q_weight"),
                Tensor(f"{b}.q_scale", (groups, n), s.model_dtype, p.name, "q_scale")]
    return [Tensor(f"{b}.q_weight", (n, words), "uint32", p.name, "q_weight"),
            Tensor(f"{b}.q_scale", (n, groups), s.model_dtype, p.name, "q_scale")]


MODES = ("search", "mlc")


def convert(p: Param, reader, s: Scheme, choice: Choice) -> list[tuple[Tensor, np.ndarray]]:
    outs = tensors(p, s)
    if not is_quantized(p, s):
        return as_stored(outs[0], read_float(reader, p))
    # Rows are quantized independently, so a joined weight (q|k|v, gate|up, stacked experts) is quantized
    # part by part where each lies in the source, never copied into one array first.
    parts = [np.asarray(x).reshape(-1, x.shape[-1]) for x in read_parts(reader, p)]
    n, k = sum(x.shape[0] for x in parts), parts[0].shape[1]
    q, scale = np.empty((n, s.words(k)), np.uint32), np.empty((n, s.groups(k)), s.model_dtype)
    err = ref = 0.0
    start = 0
    for x in parts:
        rows = slice(start, start + x.shape[0])
        _, _, (e, r) = group_quantize(x, s, choice.mode, choice.importance.get(p.name), out=(q[rows], scale[rows]))
        err, ref, start = err + e, ref + r, rows.stop
    choice.errors[p.name] = (err, ref)
    if p.kind == "experts":
        return [(outs[0], q.reshape(outs[0].shape)), (outs[1], scale.reshape(outs[1].shape))]
    if outs[0].shape != q.shape:  # KN layout
        q, scale = np.ascontiguousarray(q.T), np.ascontiguousarray(scale.T)
    return [(outs[0], q), (outs[1], scale)]


_ROWS_PER_CHUNK_ELEMS = 1 << 21  # two chunks in flight stay within the old single-chunk memory
_PARALLEL_ELEMS = 1 << 18  # smaller tensors are not worth a thread
WORKERS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def group_quantize(w: np.ndarray, s: Scheme, mode: str = "search", importance: np.ndarray | None = None,
                   native: bool = True, out: tuple[np.ndarray, np.ndarray] | None = None,
                   ) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """[N, K] float -> (q_weight [N, words] uint32, q_scale [N, groups]) in NK layout, and the sums of
    squared reconstruction error and of squared weights (in the model dtype's values). native=False runs
    the numpy versions (MLC's rule: the same bytes; the search: its reference, equal up to rounding).
    out: the (q_weight, q_scale) arrays to fill (C-contiguous rows of bigger ones, say)."""
    if mode not in MODES:
        raise ValueError(f"quantization mode {mode!r}: expected one of {MODES}")
    n, k = w.shape
    if out is None:
        out = np.empty((n, s.words(k)), np.uint32), np.empty((n, s.groups(k)), s.model_dtype)
    q, scale = out
    rows = max(1, min(_ROWS_PER_CHUNK_ELEMS // max(k, 1), -(-n // WORKERS) if n * k >= _PARALLEL_ELEMS else n))
    weights = None if importance is None else _grouped(np.asarray(importance, np.float32)[None, :], s)[0]
    in_c = _in_c(w, s, mode, weights) if native else None
    if in_c is not None:
        src, quantize_chunk = in_c

        def chunk(r: int) -> tuple[float, float]:
            return quantize_chunk(src[r:r + rows], q[r:r + rows], scale[r:r + rows])
    else:
        if mode == "mlc":
            quantize_rows = _quantize_rows
        else:
            quantize_rows = functools.partial(search.search_groups, importance=weights)

        def chunk(r: int) -> tuple[float, float]:
            grouped = _grouped(w[r:r + rows], s)
            codes, scale[r:r + rows] = quantize_rows(grouped, s)
            diff = (codes * scale[r:r + rows].astype(np.float32)[:, :, None] - grouped).ravel()
            codes += np.float32(s.max_int)
            vals = codes.reshape(codes.shape[0], -1).astype(np.uint32)
            vals[:, k:] = 0
            q[r:r + rows] = pack(vals, s)
            return float(np.dot(diff, diff)), float(np.dot(grouped.ravel(), grouped.ravel()))

    # Rows are independent, so threads (numpy and ctypes let go of the GIL) change nothing but time.
    starts = range(0, n, rows)
    if len(starts) > 1 and WORKERS > 1:
        with concurrent.futures.ThreadPoolExecutor(WORKERS) as pool:
            sums = list(pool.map(chunk, starts))
    else:
        sums = [chunk(r) for r in starts]
    err, ref = sum(e for e, _ in sums), sum(r for _, r in sums)
    return q, scale, (err, ref)


@functools.cache
def c_library():
    """The C kernels (_group.c, built by setup.py), through ctypes; None where they were not built."""
    import ctypes

    try:
        from llmc.quant import _group
    except ImportError:
        return None
    lib = ctypes.CDLL(_group.__file__)
    p, i32, i64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64
    lib.mlc_rule.restype = lib.search_groups.restype = i32
    lib.mlc_rule.argtypes = [p, i32, i64, i64, i32, i32, i32, p, p, p]
    lib.search_groups.argtypes = [p, i32, i64, i64, i32, i32, i32, p, p, i32, i32, p, p, p]
    return lib


def _c_fits(s: Scheme) -> bool:
    return np.dtype(s.model_dtype) in (np.float16, np.float32) and s.group_size <= 256 and \
        s.group_size % s.per_word == 0 and s.group_size % 8 == 0


def _in_c(w: np.ndarray, s: Scheme, mode: str, weights: np.ndarray | None):
    """(rows in the model dtype's values, chunk function) for the C kernel; None to use numpy's rule.
    The search runs only in C (its bytes are defined there), so it needs the built library."""
    lib = c_library()
    if lib is None or not _c_fits(s):
        if mode == "search":
            raise NotAvailable(f"{s.name}: llmc's search quantizer is C (llmc.quant._group), and "
                               + ("it was not built: reinstall llmc (pip install -e .) on a machine with a C compiler"
                                  if lib is None else "it takes group sizes that are multiples of 8 up to 256"))
        return None
    dt = np.dtype(s.model_dtype)
    src = np.asarray(w)
    if src.dtype not in (np.float16, np.float32) or (dt == np.float16 and src.dtype != dt):
        src = src.astype(dt)  # cast to the model dtype first, as MLC
    src = np.ascontiguousarray(src)
    k = src.shape[1]
    model_f16 = int(dt == np.float16)
    if weights is not None:
        weights = np.ascontiguousarray(weights, np.float32)
    grid = np.asarray(search.GRID, np.float32)

    def chunk(rows: np.ndarray, q: np.ndarray, scale: np.ndarray) -> tuple[float, float]:
        sums = np.zeros(2, np.float64)
        head = (rows.ctypes.data, int(rows.dtype == np.float16), rows.shape[0], k, model_f16, s.bits, s.group_size)
        if mode == "mlc":
            status = lib.mlc_rule(*head, q.ctypes.data, scale.ctypes.data, sums.ctypes.data)
        else:
            status = lib.search_groups(*head, None if weights is None else weights.ctypes.data, grid.ctypes.data,
                                       len(grid), search.ROUNDS, q.ctypes.data, scale.ctypes.data,
                                       sums.ctypes.data)
        if status != 0:
            raise ValueError(f"{s.name}: the C quantizer refused group size {s.group_size}")
        return float(sums[0]), float(sums[1])

    return src, chunk


def _grouped(w: np.ndarray, s: Scheme) -> np.ndarray:
    """[n, K] -> [n, groups, group_size] float32 in the model dtype's values, K zero-padded."""
    n, k = w.shape
    g, gs = s.groups(k), s.group_size
    dt = np.dtype(s.model_dtype)
    padded = np.zeros((n, g * gs), np.float32)
    src = np.asarray(w)
    padded[:, :k] = src.astype(dt) if src.dtype != dt else src  # cast to the model dtype first, as MLC
    return padded.reshape(n, g, gs)


def _round_f16(a: np.ndarray) -> np.ndarray:
    """Round float32 values in place to float16 precision (round half to even), for values in
    float16's normal range: what a float16 operation would store. Much faster than astype."""
    bits = a.view(np.uint32)
    bits += np.uint32(0x0FFF) + ((bits >> np.uint32(13)) & np.uint32(1))
    bits &= np.uint32(0xFFFFE000)
    return a


def _quantize_rows(grouped: np.ndarray, s: Scheme) -> tuple[np.ndarray, np.ndarray]:
    """MLC's rule: grouped [n, g, gs] -> (signed codes in [-max_int, max_int], scale [n, g])."""
    dt = np.dtype(s.model_dtype)
    half = dt == np.float16
    # float16 arithmetic done in float32, rounded to float16 after every operation: a float32
    # result rounded to float16 is the correctly rounded float16 result for + - * /.
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
    x -= max_int
    return x, scale


def pack(vals: np.ndarray, s: Scheme) -> np.ndarray:
    """[N, M] integers -> [N, M / per_word] uint32 words, element k at bit s.shift(k) of word k // per_word."""
    n, m = vals.shape
    v = vals.reshape(n, m // s.per_word, s.per_word)
    words = np.zeros((n, m // s.per_word), np.uint32)
    for element in range(s.per_word):
        words |= v[:, :, element] << np.uint32(s.shift(element))
    return words


def dequantize(q_weight: np.ndarray, q_scale: np.ndarray, s: Scheme, k: int) -> np.ndarray:
    """NK q_weight [N, words] and q_scale [N, groups] -> float32 [N, k]: (q - max_int) * scale, as
    every runtime reads the format (for measuring quality; the libraries dequantize on their own)."""
    n = q_weight.shape[0]
    vals = np.empty((n, q_weight.shape[1] * s.per_word), np.float32)
    for element in range(s.per_word):
        vals[:, element::s.per_word] = (q_weight >> np.uint32(s.shift(element))) & np.uint32(s.mask)
    vals -= np.float32(s.max_int)
    grouped = vals.reshape(n, -1, s.group_size) * q_scale.astype(np.float32)[:, :, None]
    return grouped.reshape(n, -1)[:, :k]
