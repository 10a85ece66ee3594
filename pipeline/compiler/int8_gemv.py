"""Decode-time matrix-vector products with int8 activations and integer dot products (--opt O3).

llama.cpp's trick for 4-bit weights on CPUs: quantize the activation row to int8 per
group of 32 and multiply it with the weights' 4-bit integers using the CPU's
u8 x s8 dot-product instruction (VPDPBUSD: AVX512-VNNI or AVX-VNNI), applying the
float scales once per group. Exact kernels stay the default (O2); these change the
numerics by the activations' rounding (~0.4% of a group's largest value).

MLC's 4-bit layout (q4f*_1): row n of `q_weight` [N, K/8] holds 8 nibbles per uint32,
element k at bits 4*(k % 8) of word k // 8, stored as q + 7 with q in [-7, 8];
`q_scale` [N, K/32]. So byte b of a row holds elements 2b (low nibble) and 2b+1 (high
nibble). Masking a 32-byte vector with 0x0F gives the even elements, shifting by 4 the
odd ones; the activations are laid out to match:

- xe [t, K/2] int8: the row's even elements, xo [t, K/2]: its odd ones, as round(x / sx)
  with sx = max|x| / 127 over each group of 32;
- corr [t, K/8] int32: -7 * (sum of the 8 quantized elements one int32 lane covers), the
  zero point, preloaded into the accumulator;
- sx [t, K/8] float32: each lane's group scale (a group spans 4 lanes).

One step covers 64 elements (two groups) with two 256-bit VPDPBUSD, then converts the 8
lane sums to float and accumulates them times weight scale x activation scale.
"""
from __future__ import annotations

import functools

from tvm.script import tirx as T

GROUP = 32
STEP = 64  # elements per 256-bit step: 32 bytes of nibbles
PARALLEL_CHUNKS = 16
DPBUSD = "llvm.x86.avx512.vpdpbusd.256"  # AVX512-VNNI with VL, or AVX-VNNI (same intrinsic in LLVM)
ZERO_POINT = 7


def supported(target) -> bool:
    from tvm.target import codegen

    if target.kind.name != "llvm":
        return False
    vnni = codegen.target_has_features("avx512vnni", target) and codegen.target_has_features("avx512vl", target)
    return bool(vnni or codegen.target_has_features("avxvnni", target))


def shape_ok(n: int, k: int) -> bool:
    return k % STEP == 0


@functools.cache  # parsing TVMScript costs ~0.1 s, and every layer asks
def quantize_activations(k: int):
    """x [t, K] float32 -> (xe, xo, corr, sx) as described above."""
    groups = k // GROUP

    @T.prim_func(private=True, s_tir=True)
    def quantize_int8(var_x: T.handle, var_xe: T.handle, var_xo: T.handle, var_corr: T.handle, var_sx: T.handle):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        t = T.int64()
        x = T.match_buffer(var_x, (t, k), "float32")
        xe = T.match_buffer(var_xe, (t, k // 2), "int8")
        xo = T.match_buffer(var_xo, (t, k // 2), "int8")
        corr = T.match_buffer(var_corr, (t, k // 8), "int32")
        sx = T.match_buffer(var_sx, (t, k // 8), "float32")
        for r, g in T.grid(t, groups):
            with T.sblock("quantize"):
                T.reads()
                T.writes()
                amax = T.sblock_alloc_buffer((1,), "float32", scope="local")
                q = T.sblock_alloc_buffer((GROUP,), "int32", scope="local")
                amax[0] = T.float32(0)
                for i in T.serial(GROUP):
                    amax[0] = T.max(amax[0], T.abs(x[r, g * GROUP + i]))
                for i in T.serial(GROUP):
                    q[i] = T.Cast("int32", T.round(T.if_then_else(
                        amax[0] > T.float32(0), x[r, g * GROUP + i] * (T.float32(127) / amax[0]), T.float32(0))))
                for i in T.serial(GROUP // 2):
                    xe[r, g * (GROUP // 2) + i] = T.Cast("int8", q[2 * i])
                    xo[r, g * (GROUP // 2) + i] = T.Cast("int8", q[2 * i + 1])
                for lane in T.serial(GROUP // 8):
                    corr[r, g * (GROUP // 8) + lane] = -ZERO_POINT * (
                        q[lane * 8] + q[lane * 8 + 1] + q[lane * 8 + 2] + q[lane * 8 + 3]
                        + q[lane * 8 + 4] + q[lane * 8 + 5] + q[lane * 8 + 6] + q[lane * 8 + 7])
                    sx[r, g * (GROUP // 8) + lane] = amax[0] / T.float32(127)

    return quantize_int8


def _low(packed):
    """The even elements of 32 bytes of nibbles, one per byte."""
    return T.reinterpret("int8x32", T.bitwise_and(packed, T.broadcast(T.int32(0x0F0F0F0F), 8)))


def _high(packed):
    """The odd elements."""
    return _low(T.shift_right(packed, T.broadcast(T.int32(4), 8)))


def _dot(acc, unsigned, signed):
    """acc (8 x int32) + sums of 4 products u8 x s8 per lane: one VPDPBUSD."""
    return T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id(DPBUSD), acc, unsigned, signed, dtype="int32x8")


def _group_scales(q_scale, row, step):
    """A step's two weight-group scales, each over its group's 4 lanes."""
    pair = T.Cast("float32x2", q_scale[row, T.ramp(step * 2, 1, 2)])
    return T.Shuffle([pair] * 4, [0, 0, 0, 0, 1, 1, 1, 1])


@functools.cache
def gemv(n: int, k: int, scale_dtype: str):
    """out[t, N] = the int8 product of each activation row with the 4-bit weight [N, K]."""
    steps = k // STEP
    # a few chunks of rows rather than one row per parallel iteration: a buffer allocated inside
    # a parallel loop comes from TVM's workspace pool, not the stack, and that costs per iteration
    rows_per_chunk = -(-n // PARALLEL_CHUNKS)
    chunks = -(-n // rows_per_chunk)

    @T.prim_func(private=True, s_tir=True)
    def q4_int8_gemv(var_xe: T.handle, var_xo: T.handle, var_corr: T.handle, var_sx: T.handle,
                     q_weight: T.Buffer((n, k // 8), "uint32"), q_scale: T.Buffer((n, k // GROUP), scale_dtype),
                     var_out: T.handle):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        t = T.int64()
        xe = T.match_buffer(var_xe, (t, k // 2), "int8")
        xo = T.match_buffer(var_xo, (t, k // 2), "int8")
        corr = T.match_buffer(var_corr, (t, k // 8), "int32")
        sx = T.match_buffer(var_sx, (t, k // 8), "float32")
        out = T.match_buffer(var_out, (t, n), "float32")
        for chunk in T.parallel(chunks):
            with T.sblock("gemv"):
                T.reads()
                T.writes()
                acc = T.sblock_alloc_buffer((8,), "float32", scope="local")
                # one weight row at a time, front to back: a single stream the prefetcher follows
                # (interleaving rows made K=1536 rows 1.4x slower from DRAM)
                for row_in_chunk, r in T.grid(rows_per_chunk, t):
                    row: T.let[T.int32] = chunk * rows_per_chunk + row_in_chunk
                    if row < n:  # the last chunk may be short
                        acc[T.ramp(0, 1, 8)] = T.broadcast(T.float32(0), 8)
                        for step in T.serial(steps):
                            even: T.let[T.int8x32] = xe[r, T.ramp(step * 32, 1, 32)]
                            odd: T.let[T.int8x32] = xo[r, T.ramp(step * 32, 1, 32)]
                            zero: T.let[T.int32x8] = corr[r, T.ramp(step * 8, 1, 8)]
                            packed: T.let[T.int32x8] = T.reinterpret("int32x8", q_weight[row, T.ramp(step * 8, 1, 8)])
                            dot: T.let[T.int32x8] = _dot(_dot(zero, _low(packed), even), _high(packed), odd)
                            acc[T.ramp(0, 1, 8)] = acc[T.ramp(0, 1, 8)] + T.Cast("float32x8", dot) * (
                                _group_scales(q_scale, row, step) * sx[r, T.ramp(step * 8, 1, 8)])
                        out[r, row] = (acc[0] + acc[1] + acc[2] + acc[3] + acc[4] + acc[5] + acc[6] + acc[7])

    return q4_int8_gemv
