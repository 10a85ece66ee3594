"""The int8-activation GEMV (--opt O3) against the same integer arithmetic in numpy, and how far that
arithmetic is from the exact product."""
from __future__ import annotations

import numpy as np
import pytest
import tvm

from pipeline import targets
from pipeline.compiler import int8_gemv

TARGET = tvm.target.Target(targets.resolve("cpu", None, None).target)
needs_vnni = pytest.mark.skipif(not int8_gemv.supported(TARGET),
                                reason="this CPU has neither AVX512-VNNI nor AVX-VNNI (the kernels need one)")


def tensor(a):
    return tvm.runtime.tensor(np.ascontiguousarray(a), tvm.cpu())


def mlc_q4(n, k, scale_dtype, seed):
    """Random MLC q4 weights: nibbles q in [0, 14] (value (q - 7) * scale), 8 per uint32, low first."""
    rng = np.random.default_rng(seed)
    q = rng.integers(0, 15, (n, k)).astype(np.uint32)
    packed = np.zeros((n, k // 8), np.uint32)
    for j in range(8):
        packed |= q[:, j::8] << (4 * j)
    scale = (rng.random((n, k // 32)) * 0.02 + 0.001).astype(scale_dtype)
    return q, packed, scale


def int8_reference(x, q, scale):
    """Per group of 32: round(x * 127 / max|x|) as int8, integer dot with q - 7, times both scales."""
    t, k = x.shape
    groups = x.reshape(t, k // 32, 32)
    amax = np.abs(groups).max(-1, keepdims=True)
    xq = np.round(groups * (127 / amax))
    w = (q.astype(np.float64) - 7).reshape(q.shape[0], k // 32, 32)
    dots = np.einsum("tgi,ngi->tng", xq, w)
    return (dots * (amax[..., 0] / 127)[:, None, :] * scale.astype(np.float64)[None]).sum(-1)


@needs_vnni
@pytest.mark.parametrize("n,k,t,scale_dtype", [(96, 64, 1, "float32"), (960, 576, 1, "float32"),
                                               (576, 1536, 3, "float16"), (320, 128, 2, "float16")])
def test_gemv_is_the_int8_arithmetic(n, k, t, scale_dtype):
    q, packed, scale = mlc_q4(n, k, scale_dtype, seed=n + k)
    x = np.random.default_rng(t).standard_normal((t, k)).astype(np.float32)
    quantize = tvm.compile(tvm.IRModule({"main": int8_gemv.quantize_activations(k).with_attr("global_symbol", "main")}),
                           TARGET)
    gemv = tvm.compile(tvm.IRModule({"main": int8_gemv.gemv(n, k, scale_dtype).with_attr("global_symbol", "main")}),
                       TARGET)
    act = [tensor(np.zeros((t, k // 2), np.int8)), tensor(np.zeros((t, k // 2), np.int8)),
           tensor(np.zeros((t, k // 8), np.int32)), tensor(np.zeros((t, k // 8), np.float32))]
    quantize(tensor(x), *act)
    out = tensor(np.zeros((t, n), np.float32))
    gemv(*act, tensor(packed), tensor(scale), out)

    want = int8_reference(x, q, scale)
    np.testing.assert_allclose(out.numpy(), want, rtol=0, atol=2e-6 * np.abs(want).max())
    exact = x.astype(np.float64) @ ((q.astype(np.float64) - 7) * np.repeat(scale.astype(np.float64), 32, 1)).T
    error = np.abs(out.numpy() - exact).max() / np.abs(exact).max()
    assert 1e-4 < error < 2e-2  # activation rounding: not exact, and not far off


def test_quantized_activations_layout():
    k = 64
    x = np.random.default_rng(0).standard_normal((1, k)).astype(np.float32)
    quantize = tvm.compile(tvm.IRModule({"main": int8_gemv.quantize_activations(k).with_attr("global_symbol", "main")}),
                           TARGET)
    xe, xo = tensor(np.zeros((1, k // 2), np.int8)), tensor(np.zeros((1, k // 2), np.int8))
    corr, sx = tensor(np.zeros((1, k // 8), np.int32)), tensor(np.zeros((1, k // 8), np.float32))
    quantize(tensor(x), xe, xo, corr, sx)
    amax = np.abs(x.reshape(2, 32)).max(-1)
    xq = np.round(x.reshape(2, 32) * (127 / amax[:, None])).astype(np.int32).reshape(-1)
    np.testing.assert_array_equal(xe.numpy()[0], xq[0::2])
    np.testing.assert_array_equal(xo.numpy()[0], xq[1::2])
    np.testing.assert_array_equal(corr.numpy()[0], -7 * xq.reshape(8, 8).sum(-1))
    np.testing.assert_allclose(sx.numpy()[0], np.repeat(amax / 127, 4), rtol=1e-7)


def test_supported_follows_the_target_cpu():
    def cpu(mcpu):
        return tvm.target.Target({"kind": "llvm", "mtriple": "x86_64-unknown-linux-gnu", "mcpu": mcpu})

    assert int8_gemv.supported(cpu("znver4")) and int8_gemv.supported(cpu("alderlake"))
    assert not int8_gemv.supported(cpu("generic")) and not int8_gemv.supported(cpu("skylake"))
