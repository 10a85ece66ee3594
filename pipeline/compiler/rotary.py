"""Rotary position embedding applied inside the model, for families whose layers differ in their RoPE
(Gemma 3's local and global bases): the KV cache then runs with RoPE off and stores rotated keys."""
from __future__ import annotations

import numpy as np
from tvm import te, tirx
from tvm.relax.frontend import nn


def apply(x: nn.Tensor, positions: nn.Tensor, inv_freq: np.ndarray, scale: float = 1.0,
          long_freq: np.ndarray | None = None, long_from: int = 0) -> nn.Tensor:
    """x [b, t, heads, d] rotated as transformers' rotate_half form: x·cos + rotate_half(x)·sin over the first
    2·len(inv_freq) dimensions (the rest pass: partial rotary), the angle of dimension i at position p being
    p·inv_freq[i mod len] in float32, cos and sin times scale (LongRoPE's attention factor); with long_freq,
    positions from long_from on take their frequencies from it instead (LongRoPE's long factors).
    positions [b·t] (the cache's)."""
    half = len(inv_freq)
    table = inv_freq if long_freq is None else np.concatenate([inv_freq, long_freq])
    freqs = nn.Tensor.from_const(np.asarray(table, np.float32))
    factor = tirx.const(scale, "float32")

    def rotate(xt, pos, f):
        b, t, heads, d = xt.shape
        rot = 2 * half

        def at(i, j, h, k):
            p = pos[i * t + j]
            slot = tirx.floormod(k, half)
            if long_freq is not None:
                slot = slot + tirx.Select(p >= long_from, half, 0)
            angle = p.astype("float32") * f[slot]
            partner = tirx.Select(k < half, -xt[i, j, h, tirx.min(k + half, d - 1)].astype("float32"),
                                  xt[i, j, h, tirx.max(k - half, 0)].astype("float32"))
            x_k = xt[i, j, h, k].astype("float32")
            if scale != 1.0:
                rotated = x_k * (tirx.cos(angle) * factor) + partner * (tirx.sin(angle) * factor)
            else:
                rotated = x_k * tirx.cos(angle) + partner * tirx.sin(angle)
            value = rotated if rot == d else tirx.Select(k < rot, rotated, x_k)
            return value.astype(xt.dtype)

        return te.compute(xt.shape, at, name="rotary")

    return nn.op.tensor_expr_op(rotate, "rotary", [x, positions, freqs])
