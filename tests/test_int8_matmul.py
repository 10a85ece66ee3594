"""The int8-activation GEMV and GEMM (--opt O3) against the same integer arithmetic in numpy, and how far that
arithmetic is from the exact product."""
from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.relax.frontend import nn

from llmc import devices as targets
from llmc.compiler import int8_matmul, layers
from llmc.quant import scheme

TARGET = tvm.target.Target(targets.resolve("cpu", None, None).target)
HOST_DOT = int8_matmul.dot_instruction(TARGET)
needs_int8_dot = pytest.mark.skipif(HOST_DOT is None, reason="this CPU has neither AVX2 nor VNNI (the kernels need one)")
# Every way of computing the dot products this CPU can run: VNNI's CPUs run the AVX2 kernels as well.
RUNNABLE = {None: [], int8_matmul.VPMADDUBSW: [int8_matmul.VPMADDUBSW],
            int8_matmul.VPDPBUSD: [int8_matmul.VPMADDUBSW, int8_matmul.VPDPBUSD]}[HOST_DOT]


def tensor(a):
    return tvm.runtime.tensor(np.ascontiguousarray(a), tvm.cpu())


def mlc_q4(n, k, scale_dtype, seed):
    """Random MLC q4 weights: nibbles q in [0, 14] (value (q - 7) * scale), 8 per uint32, low first."""
    rng = np.random.default_rng(seed)
    q = rng.integers(0, 15, (n, k)).astype(np.uint32)
    packed = packed_nibbles(q)
    scale = (rng.random((n, k // 32)) * 0.02 + 0.001).astype(scale_dtype)
    return q, packed, scale


def packed_nibbles(q):
    """MLC's packing of [N, K] nibbles: 8 per uint32, low first."""
    packed = np.zeros((q.shape[0], q.shape[1] // 8), np.uint32)
    for j in range(8):
        packed |= q[:, j::8].astype(np.uint32) << (4 * j)
    return packed


def int8_reference(x, q, scale):
    """Per group of 32: round(x * 127 / max|x|) as int8, integer dot with q - 7, times both scales."""
    t, k = x.shape
    groups = x.reshape(t, k // 32, 32)
    amax = np.abs(groups).max(-1, keepdims=True)
    xq = np.round(groups * (127 / amax))
    w = (q.astype(np.float64) - 7).reshape(q.shape[0], k // 32, 32)
    dots = np.einsum("tgi,ngi->tng", xq, w)
    return (dots * (amax[..., 0] / 127)[:, None, :] * scale.astype(np.float64)[None]).sum(-1)


def compiled(func):
    return tvm.compile(tvm.IRModule({"main": func.with_attr("global_symbol", "main")}), TARGET)


def quantized(x, padded_rows, decode):
    """quantize_activations' four outputs for x, with padded_rows rows."""
    k = x.shape[1]
    act = [tensor(np.full(shape, 99, dtype)) for shape, dtype in int8_matmul.activation_shapes(padded_rows, k, decode)]
    compiled(int8_matmul.quantize_activations(k, decode))(tensor(x), *act)
    return act


@pytest.mark.parametrize("dot", RUNNABLE)
@pytest.mark.parametrize("kernel,n,k,t,scale_dtype", [
    ("gemv", 96, 64, 1, "float32"), ("gemv", 960, 576, 1, "float32"), ("gemv", 576, 1536, 3, "float16"),
    ("gemv", 320, 128, 2, "float16"),
    ("gemm", 960, 576, 32, "float32"), ("gemm", 576, 1536, 7, "float16"),  # 7: a partial token tile
    ("gemm", 98, 128, 5, "float32"), ("gemm", 33, 64, 2, "float16")])  # 2-row and 1-row register tiles
def test_matmul_is_the_int8_arithmetic(kernel, n, k, t, scale_dtype, dot):
    q, packed, scale = mlc_q4(n, k, scale_dtype, seed=n + k)
    x = np.random.default_rng(t).standard_normal((t, k)).astype(np.float32)
    tile = int8_matmul.TOKEN_TILE if kernel == "gemm" else 1
    act = quantized(x, -(-t // tile) * tile, decode=kernel == "gemv")
    out = tensor(np.zeros((t, n), np.float32))
    compiled(getattr(int8_matmul, kernel)(n, k, scale_dtype, dot))(*act, tensor(packed), tensor(scale), out)

    want = int8_reference(x, q, scale)
    np.testing.assert_allclose(out.numpy(), want, rtol=0, atol=2e-6 * np.abs(want).max())
    exact = x.astype(np.float64) @ ((q.astype(np.float64) - 7) * np.repeat(scale.astype(np.float64), 32, 1)).T
    error = np.abs(out.numpy() - exact).max() / np.abs(exact).max()
    assert 1e-4 < error < 2e-2  # activation rounding: not exact, and not far off


@pytest.mark.parametrize("dot", RUNNABLE)
@pytest.mark.parametrize("kernel", ["gemv", "gemm"])
@pytest.mark.parametrize("sign", [1, -1])
def test_the_largest_integer_sums_stay_exact(kernel, sign, dot):
    """Every nibble 15 and every activation +-127: the GEMV's int16 reduction holds 16 products per lane
    (+-30480, just inside int16), so an overflow there would show as a wrong sign or magnitude."""
    n, k, t = 8, 512, 4
    packed = packed_nibbles(np.full((n, k), 15, np.uint32))
    scale = np.full((n, k // 32), 0.5, np.float32)
    x = np.full((t, k), sign, np.float32)
    out = tensor(np.zeros((t, n), np.float32))
    act = quantized(x, t, decode=kernel == "gemv")
    compiled(getattr(int8_matmul, kernel)(n, k, "float32", dot))(*act, tensor(packed), tensor(scale), out)
    np.testing.assert_array_equal(out.numpy(), np.full((t, n), sign * 8 * 0.5 * k, np.float32))


@pytest.mark.parametrize("decode", [True, False])
def test_quantized_activations_layout(decode):
    """Per group for the GEMV (decode), per int32 lane of 8 elements for the GEMM."""
    k, t, padded = 64, 3, 4
    x = np.random.default_rng(0).standard_normal((t, k)).astype(np.float32)
    x[1] = 0  # an all-zero group quantizes to zeros with scale 0, not NaN
    xe, xo, corr, sx = (a.numpy() for a in quantized(x, padded, decode))
    amax = np.abs(x.reshape(t, 2, 32)).max(-1)
    xq = np.round(x.reshape(t, 2, 32) * (127 / np.where(amax, amax, 1))[..., None]).astype(np.int32).reshape(t, k)
    np.testing.assert_array_equal(xe[:t], xq[:, 0::2])
    np.testing.assert_array_equal(xo[:t], xq[:, 1::2])
    per_entry = 32 if decode else 8
    np.testing.assert_array_equal(corr[:t], -7 * xq.reshape(t, k // per_entry, per_entry).sum(-1))
    np.testing.assert_allclose(sx[:t], np.repeat(amax / 127, 32 // per_entry, axis=1), rtol=1e-7)
    assert not any(a[t:].any() for a in (xe, xo, corr, sx))  # padding rows are zeros


@needs_int8_dot
@pytest.mark.parametrize("seq_len,kernel", [("seq_len", "q4_int8_gemm"), (1, "q4_int8_gemv")])
def test_a_linear_layer_takes_the_gemm_for_prefill_and_the_gemv_for_decode(seq_len, kernel):
    layer = layers.GroupQuantLinear(128, 64, scheme("q4f32_1"), "float32")
    layer.int8_activations = HOST_DOT
    mod, _ = layer.export_tvm({"forward": {"x": nn.spec.Tensor((1, seq_len, 128), "float32")}})
    assert kernel in [gv.name_hint for gv in mod.get_global_vars()]
    vm = relax.VirtualMachine(tvm.compile(mod, target=TARGET), tvm.cpu())
    q, packed, scale = mlc_q4(64, 128, "float32", seed=0)
    x = np.random.default_rng(0).standard_normal((1, 7 if seq_len == "seq_len" else 1, 128)).astype(np.float32)
    out = vm["forward"](tensor(x), tensor(packed), tensor(scale)).numpy()
    want = int8_reference(x[0], q, scale)
    np.testing.assert_allclose(out[0], want, rtol=0, atol=2e-6 * np.abs(want).max())


def x86(mcpu):
    return tvm.target.Target({"kind": "llvm", "mtriple": "x86_64-unknown-linux-gnu", "mcpu": mcpu})


# LLVM's CPUs: VNNI (AVX512 or AVX), AVX2 alone (Skylake, Zen 2 and 3), and neither (generic x86-64, Sandy Bridge)
DOT_OF_CPU = {"znver4": "vpdpbusd", "alderlake": "vpdpbusd", "sapphirerapids": "vpdpbusd", "skylake": "vpmaddubsw",
              "znver2": "vpmaddubsw", "znver3": "vpmaddubsw", "generic": None, "sandybridge": None}


@pytest.mark.parametrize("mcpu", DOT_OF_CPU)
def test_the_dot_instruction_follows_the_target_cpu(mcpu):
    assert int8_matmul.dot_instruction(x86(mcpu)) == DOT_OF_CPU[mcpu]


@pytest.mark.parametrize("mcpu", ["znver4", "znver3"])
def test_each_cpu_kind_gets_machine_code_with_its_own_instruction(mcpu):
    """Compiled, not run (any machine checks both): the AVX2 kernels do without VNNI's instruction."""
    dot = DOT_OF_CPU[mcpu]
    func = int8_matmul.gemv(96, 64, "float32", dot).with_attr("global_symbol", "main")
    asm = tvm.compile(tvm.IRModule({"main": func}), x86(mcpu)).mod.inspect_source("asm")
    assert (dot in asm, "vpdpbusd" in asm) == (True, dot == "vpdpbusd")


@pytest.mark.skipif(HOST_DOT != int8_matmul.VPDPBUSD, reason="needs a CPU with VNNI to run both instructions")
@pytest.mark.parametrize("kernel,n,k,t", [("gemv", 576, 1536, 3), ("gemm", 98, 128, 5)])
def test_both_instructions_give_the_same_bits(kernel, n, k, t):
    q, packed, scale = mlc_q4(n, k, "float16", seed=1)
    x = np.random.default_rng(2).standard_normal((t, k)).astype(np.float32) * 30
    tile = int8_matmul.TOKEN_TILE if kernel == "gemm" else 1
    act = quantized(x, -(-t // tile) * tile, decode=kernel == "gemv")
    outs = []
    for dot in RUNNABLE:
        outs.append(tensor(np.zeros((t, n), np.float32)))
        compiled(getattr(int8_matmul, kernel)(n, k, "float16", dot))(*act, tensor(packed), tensor(scale), outs[-1])
    assert outs[0].numpy().tobytes() == outs[1].numpy().tobytes()


@pytest.mark.parametrize("mcpu", DOT_OF_CPU)
def test_the_parent_asks_llvm_what_tvm_answers(mcpu):
    """devices.llvm_query (TVM's libraries, no `tvm` import: what a compile asks first) against TVM itself."""
    from llmc.devices import llvm_query

    target = {"kind": "llvm", "mtriple": "x86_64-unknown-linux-gnu", "mcpu": mcpu}
    tvm_says = next((name for name, features in llvm_query.INT8_DOT_INSTRUCTIONS
                     if tvm.target.codegen.target_has_features(list(features), tvm.target.Target(target))), None)
    assert llvm_query.int8_dot_instruction(target) == tvm_says == DOT_OF_CPU[mcpu]
    assert llvm_query.system_cpu() == str(tvm.target.codegen.llvm_get_system_cpu())
    assert llvm_query.int8_dot_instruction({"kind": "cuda", "arch": "sm_80"}) is None


@pytest.mark.parametrize("dot", RUNNABLE)
@pytest.mark.parametrize("t,per_slot", [(1, False), (1, True), (3, False), (2, True)])
def test_expert_gemv_is_the_int8_arithmetic_on_each_routed_expert(t, per_slot, dot):
    """MoE decode: row (token, slot) multiplies its token's (or slot's own) activations with the routed
    expert's weight of the stacked [E, N, K], and only that expert's."""
    num_experts, n, k, top_k = 4, 96, 128, 2
    parts = [mlc_q4(n, k, "float32", seed=e) for e in range(num_experts)]
    packed = np.stack([p for _, p, _ in parts])
    scale = np.stack([s for _, _, s in parts])
    rows = t * top_k if per_slot else t
    x = np.random.default_rng(t).standard_normal((rows, k)).astype(np.float32)
    experts = np.array([[(3 * r + j) % num_experts for j in range(top_k)] for r in range(t)], np.int32)
    out = tensor(np.zeros((t, top_k, n), np.float32))
    kernel = int8_matmul.expert_gemv(num_experts, n, k, top_k, per_slot, "float32", dot)
    compiled(kernel)(*quantized(x, rows, decode=True), tensor(experts), tensor(packed), tensor(scale), out)
    for r in range(t):
        for j in range(top_k):
            q, _, s = parts[experts[r, j]]
            row = x[r * top_k + j if per_slot else r][None]
            want = int8_reference(row, q, s)[0]
            np.testing.assert_allclose(out.numpy()[r, j], want, rtol=0, atol=2e-6 * np.abs(want).max())


@pytest.mark.parametrize("kernel,n,k", [("gemv", 130, 192), ("gemm", 576, 1536), ("gemm", 7, 64)])
def test_kernels_are_their_templates_with_constant_sizes(kernel, n, k):
    """A kernel per shape is its template specialized: the size parameters are gone and its weight buffer's
    shape is constant, exactly as if the shape had been written into the TVMScript."""
    func = getattr(int8_matmul, kernel)(n, k, "float16", int8_matmul.VPMADDUBSW)
    script = func.script()
    assert [p.name for p in func.params][4:] == ["q_weight", "q_scale", "out"]
    assert f'q_weight: T.Buffer(({n}, {k // 8}), "uint32")' in script
    assert "T.int32()" not in script
    quantize = int8_matmul.quantize_activations(k, False)
    assert len(quantize.params) == 5 and f'xe: T.Buffer((tp, {k // 2}), "int8")' in quantize.script()
