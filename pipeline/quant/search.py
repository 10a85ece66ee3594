"""Choosing a group's scale and codes by least weighted squared error, in MLC's format unchanged.

The format fixes only the dequantization, w ~ (q - max_int) * scale with q in [0, 2**bits - 1], so a
group's signed values v = q - max_int span [-max_int, max_int + 1]: one more step on the positive
side. MLC's rule (scale = max|w| / max_int) uses 2**bits - 1 of the levels and never that extra one.
Here, as llama.cpp's make_qx_quants does: the largest |w| of a group maps to about +(max_int + 1)
(a negative scale when that value is negative, so either sign gets the longer side), a small grid of
such maps is tried, each one's scale is refit by least squares to its codes, rounded to the stored
dtype, and the candidate with the least weighted squared error wins: weighted by calibration's
per-channel importance when there is one, else by magnitude_weights. MLC's own candidate is in the
race, so no group ends worse than MLC's rule would leave it, by that measure.

Convert runs this search in C (`search_groups` in _group.c, whose fixed summation order defines the
bytes; per group, so they do not depend on chunking or threads). This numpy version is its readable
reference: the tests hold the C to it (the same codes and scale in nearly every group, errors a rounding
apart) and quality experiments can change it in a few lines.
"""
from __future__ import annotations

import numpy as np

from llmc.quant.layout import Scheme

# Where the group's largest-magnitude value may land, as offsets from max_int + 1, and the rounds of
# re-rounding against the winner. On SmolLM2's weights this 3-point grid with 2 rounds is within 0.5%
# of llama.cpp's 19-point grid (-0.9..0.9) in error at a fifth of its time, keeping a whole conversion
# within 1.5x of MLC's rule.
GRID = (-0.5, 0.0, 0.5)
ROUNDS = 2


def search_groups(x: np.ndarray, s: Scheme, importance: np.ndarray | None = None,
                  grid: tuple[float, ...] = GRID, rounds: int = ROUNDS) -> tuple[np.ndarray, np.ndarray]:
    """x [n, g, gs] float32 (already in the model dtype's values) -> (signed codes [n, g, gs] float32 in
    [-max_int, max_int + 1], scale [n, g] in the model dtype). importance [g, gs] (or [n, g, gs]) weights
    each position's squared error (None: magnitude_weights)."""
    dt = np.dtype(s.model_dtype)
    lo, hi = -float(s.max_int), float(s.max_int + 1)
    if importance is None:
        importance = magnitude_weights(x)
    weighted = x * importance
    sxx = _rowdot(weighted, x).astype(np.float64)
    peak = np.take_along_axis(x, np.abs(x).argmax(axis=2)[:, :, None], axis=2)[:, :, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_peak = np.where(peak != 0, 1.0 / peak, 0.0).astype(np.float32)
        # MLC's rule first: scale max|w| / max_int, codes within +-max_int
        mlc_scale = (np.abs(peak) / np.float32(s.max_int)).astype(dt).astype(np.float32)
        inv = np.where(mlc_scale != 0, 1.0 / mlc_scale, 0.0).astype(np.float32)
    best_codes = _codes(x, inv, -float(s.max_int), float(s.max_int))
    best_scale, best_err = _judge(sxx, weighted, best_codes, importance, dt, fixed=mlc_scale)
    for offset in grid:
        codes = _codes(x, inv_peak * np.float32(hi + offset), lo, hi)
        best_codes, best_scale, best_err = _keep_better(best_codes, best_scale, best_err, codes,
                                                        *_judge(sxx, weighted, codes, importance, dt))
    for _ in range(rounds):  # codes re-rounded against the winning scale, the scale refit to them
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(best_scale != 0, 1.0 / best_scale, 0.0).astype(np.float32)
        codes = _codes(x, inv, lo, hi)
        best_codes, best_scale, best_err = _keep_better(best_codes, best_scale, best_err, codes,
                                                        *_judge(sxx, weighted, codes, importance, dt))
    return best_codes, best_scale.astype(dt)


def magnitude_weights(x: np.ndarray) -> np.ndarray:
    """Without calibration, an element's error counts by |w| + the group's RMS (llama.cpp's weighting for
    its K-quants without an imatrix): large weights matter more to a layer's output, and the RMS floor
    keeps small ones from being ignored. On SmolLM2 it lowers perplexity where plain squared error does
    not (scripts/bench_quality.py)."""
    return np.abs(x) + np.sqrt(np.einsum("ngk,ngk->ng", x, x) / x.shape[2])[:, :, None]


def _codes(x: np.ndarray, inv_scale: np.ndarray, lo: float, hi: float) -> np.ndarray:
    codes = x * inv_scale[:, :, None]
    np.round(codes, out=codes)
    return np.clip(codes, lo, hi, out=codes)


def _judge(sxx, weighted, codes, importance, dt, fixed=None):
    """(scale, squared error) of codes: the least-squares scale rounded to the stored dtype (or a fixed
    one), and sum importance * (x - scale * codes)^2 expanded around the shared sum importance * x^2."""
    sxl = _rowdot(weighted, codes).astype(np.float64)
    sll = _rowdot(codes, codes * importance).astype(np.float64)
    if fixed is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            fixed = np.where(sll > 0, sxl / sll, 0.0).astype(dt).astype(np.float32)
    scale = fixed.astype(np.float64)
    return fixed, sxx - 2 * scale * sxl + scale * scale * sll


def _keep_better(codes, scale, err, new_codes, new_scale, new_err):
    better = new_err < err
    if not better.any():
        return codes, scale, err
    return (np.where(better[:, :, None], new_codes, codes), np.where(better, new_scale, scale),
            np.where(better, new_err, err))


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ngk,ngk->ng", a, b)
