"""Matmuls with int8 activations and integer dot products (--opt O2, the default, and O3).

llama.cpp's trick for 4-bit weights on CPUs: quantize each activation row to int8 per
group of 32 and multiply it with the weights' 4-bit integers using the CPU's
u8 x s8 dot products, applying the float scales once per group. The products of 4 adjacent bytes
summed into an int32 lane are one VPDPBUSD with VNNI (AVX512-VNNI or AVX-VNNI), or VPMADDUBSW (pairs
into int16) then VPMADDWD by ones (pairs of those into int32) with AVX2 alone. The integers are the same:
the weights are below 16 and the activations within +-127, so the int16 sums never saturate (the
GEMV's widest holds 16 products, at most 30480), and the kernels give the same bits on either kind of CPU. They are the default (O2; O1 is exact):
they change the numerics by the activations' rounding (~0.4% of a group's largest value).

The weights are in llmc.quant.layout's INT8_KERNEL_LAYOUT (q4f*_1): 8 nibbles per uint32, element k
at bits 4*(k % 8) of word k // 8, stored as q + 7. So byte b of a row holds elements 2b (low nibble)
and 2b+1 (high nibble). Masking a 32-byte vector with 0x0F gives the even elements, shifting by 4 the
odd ones; the activations are laid out to match:

- xe [t, K/2] int8: the row's even elements, xo [t, K/2]: its odd ones, as round(x / sx)
  with sx = max|x| / 127 over each group of 32;
- corr int32: the zero point, -7 * (sum of the quantized elements an entry covers);
- sx float32: their group's scale;

with one corr and sx entry per int32 lane (4 per group, [t, K/8]) for the prefill GEMM, which
preloads them into its lanes, and one per group ([t, K/32]) for the decode GEMV, which adds them
once its lanes are reduced.

One step covers 64 elements (two groups) with two 256-bit dot products into 8 int32 lanes, 4 per
group.

- `gemv` (decode, one token per sequence): one weight row at a time against every token. It adds
  four steps' lanes horizontally (two rounds of VPHADDW on AVX2's int16 sums, of VPHADDD on VNNI's
  int32 ones) into one lane per group before any float work, so the conversion, the scales and the
  FMA run once per 8 groups rather than once per 2 (that float work was half the AVX2 kernel's
  instructions), and prefetches its weights 1 KB ahead. Against the per-step kernel it replaced,
  streaming weights from DRAM: 1.10-1.16x at 2 threads on Zen 3 (AVX2), 1.36-1.48x at 2 threads
  and 1.26-1.34x at 16 on an Emerald Rapids Xeon (both instructions).
- `gemm` (prefill): a register tile of WEIGHT_ROWS rows x TOKEN_TILE tokens, so each
  unpacked weight vector serves 4 tokens and each activation load 4 rows; the token tile
  is the outer loop of a thread's rows, so its activations stay in L1 while the weights
  stream from L2. 1.3-1.7x the exact float prefill matmul at the SmolLM2 shapes. Its float work
  is already shared by 4 tokens, so its steps stay unreduced, with per-lane corr and sx (per-group
  entries spread to lanes each step measured 10-14% slower).
"""
from __future__ import annotations

import functools

from tvm.script import tirx as T

from llmc.quant.layout import INT8_KERNEL_LAYOUT, has_int8_kernel_layout
from llmc.devices import llvm_query
from llmc.devices.llvm_query import VPDPBUSD, VPMADDUBSW

GROUP = INT8_KERNEL_LAYOUT.group_size
STEP = 64  # elements per 256-bit step: 32 bytes of nibbles
BLOCK = 4  # steps per GEMV block: 8 groups, one int32 lane each once reduced
PARALLEL_CHUNKS = 16
VPMADDWD = "vpmaddwd"
VPHADDD, VPHADDW = "vphaddd", "vphaddw"
INTRINSICS = {VPDPBUSD: "llvm.x86.avx512.vpdpbusd.256",  # AVX512-VNNI with VL, or AVX-VNNI (one intrinsic)
              VPMADDUBSW: "llvm.x86.avx2.pmadd.ub.sw", VPMADDWD: "llvm.x86.avx2.pmadd.wd",
              VPHADDD: "llvm.x86.avx2.phadd.d", VPHADDW: "llvm.x86.avx2.phadd.w"}
ZERO_POINT = INT8_KERNEL_LAYOUT.max_int


def dot_instruction(target) -> str | None:
    """VPDPBUSD or VPMADDUBSW: how the target's CPU computes these kernels' dot products; None where it
    cannot (the rule is devices.llvm_query's)."""
    return llvm_query.int8_dot_instruction(dict(target.export()))


def scheme_ok(s) -> bool:
    """MLC's 4-bit group-32 NK layout with the zero point these kernels assume: q4f16_1 and q4f32_1."""
    return has_int8_kernel_layout(s)


def shape_ok(n: int, k: int) -> bool:
    return k % STEP == 0


def lanes_per_group(decode: bool) -> int:
    """Entries of corr and sx per group: one for the GEMV, one per int32 lane for the GEMM."""
    return 1 if decode else GROUP // 8


def activation_shapes(rows, k: int, decode: bool) -> list[tuple]:
    """(shape, dtype) of quantize_activations' four outputs for `rows` rows."""
    entries = k // GROUP * lanes_per_group(decode)
    return [((rows, k // 2), "int8"), ((rows, k // 2), "int8"), ((rows, entries), "int32"), ((rows, entries), "float32")]


@functools.cache
def quantize_activations(k: int, decode: bool):
    """x [t, K] float32 -> (xe, xo, corr, sx) as described above, with tp >= t rows: the rows past t
    (a prefill's padding to whole token tiles) are zeros. A prefill's rows run in parallel; decode's
    one row would only pay for waking the thread pool."""
    return _sized(_quantize_template(decode), k=k)


# Each kernel is parsed once, with its sizes as parameters, and specialized per layer shape: parsing
# TVMScript costs ~0.1 s a kernel, and a model asks for a dozen shapes (a sixth of a cold compile).
def _sized(template, **sizes):
    """The template with its size parameters bound to constants (and dropped from its parameters)."""
    params = {p.name: p for p in template.params}
    return template.specialize({params[name]: value for name, value in sizes.items()})


@functools.cache
def _quantize_template(decode: bool):
    rows = T.serial if decode else T.parallel
    lanes = lanes_per_group(decode)

    @T.prim_func(private=True, s_tir=True)
    def quantize_int8(var_x: T.handle, var_xe: T.handle, var_xo: T.handle, var_corr: T.handle, var_sx: T.handle,
                      k: T.int32):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        t = T.int64()
        tp = T.int64()
        x = T.match_buffer(var_x, (t, k), "float32")
        xe = T.match_buffer(var_xe, (tp, k // 2), "int8")
        xo = T.match_buffer(var_xo, (tp, k // 2), "int8")
        corr = T.match_buffer(var_corr, (tp, k // GROUP * lanes), "int32")
        sx = T.match_buffer(var_sx, (tp, k // GROUP * lanes), "float32")
        for r in rows(tp):
            with T.sblock("quantize"):
                T.reads()
                T.writes()
                amax8 = T.sblock_alloc_buffer((8,), "float32", scope="local")
                q = T.sblock_alloc_buffer((GROUP,), "int32", scope="local")
                for g in T.serial(k // GROUP):
                    if r < t:
                        amax8[T.ramp(0, 1, 8)] = T.max(
                            T.max(T.abs(x[r, T.ramp(g * GROUP, 1, 8)]), T.abs(x[r, T.ramp(g * GROUP + 8, 1, 8)])),
                            T.max(T.abs(x[r, T.ramp(g * GROUP + 16, 1, 8)]), T.abs(x[r, T.ramp(g * GROUP + 24, 1, 8)])))
                        amax: T.let[T.float32] = T.max(
                            T.max(T.max(amax8[0], amax8[1]), T.max(amax8[2], amax8[3])),
                            T.max(T.max(amax8[4], amax8[5]), T.max(amax8[6], amax8[7])))
                        inv: T.let[T.float32] = T.if_then_else(amax > T.float32(0), T.float32(127) / amax,
                                                               T.float32(0))
                        q[T.ramp(0, 1, GROUP)] = T.Cast("int32x32", T.round(
                            x[r, T.ramp(g * GROUP, 1, GROUP)] * T.broadcast(inv, GROUP)))
                        xe[r, T.ramp(g * (GROUP // 2), 1, GROUP // 2)] = T.Cast("int8x16", q[T.ramp(0, 2, GROUP // 2)])
                        xo[r, T.ramp(g * (GROUP // 2), 1, GROUP // 2)] = T.Cast("int8x16", q[T.ramp(1, 2, GROUP // 2)])
                        corr[r, _entries(g, lanes)] = _times(T.int32(-ZERO_POINT), _element_sums(q, lanes), lanes)
                        sx[r, _entries(g, lanes)] = _times(amax / T.float32(127), 1, lanes)
                    else:
                        xe[r, T.ramp(g * (GROUP // 2), 1, GROUP // 2)] = T.broadcast(T.int8(0), GROUP // 2)
                        xo[r, T.ramp(g * (GROUP // 2), 1, GROUP // 2)] = T.broadcast(T.int8(0), GROUP // 2)
                        corr[r, _entries(g, lanes)] = _times(T.int32(0), 1, lanes)
                        sx[r, _entries(g, lanes)] = _times(T.float32(0), 1, lanes)

    return quantize_int8


def _entries(g, lanes):
    """Index of group g's corr and sx entries."""
    return g if lanes == 1 else T.ramp(g * lanes, 1, lanes)


def _times(scalar, value, lanes):
    """scalar * value, the scalar broadcast where the entries are a vector."""
    return scalar * value if lanes == 1 else T.broadcast(scalar, lanes) * value


def _element_sums(q, lanes):
    """The group's quantized elements summed per entry: lane l of 4 covers elements 8l..8l+7 (one strided
    vector per position in the lane), or one entry all 32."""
    by_lane = q[T.ramp(0, 8, 4)]
    for position in range(1, 8):
        by_lane = by_lane + q[T.ramp(position, 8, 4)]
    if lanes == 4:
        return by_lane
    return (T.Shuffle([by_lane], [0]) + T.Shuffle([by_lane], [1])) + (T.Shuffle([by_lane], [2]) + T.Shuffle([by_lane], [3]))


def _low(packed):
    """The even elements of 32 bytes of nibbles, one per byte."""
    return T.reinterpret("int8x32", T.bitwise_and(packed, T.broadcast(T.int32(0x0F0F0F0F), 8)))


def _high(packed):
    """The odd elements."""
    return _low(T.shift_right(packed, T.broadcast(T.int32(4), 8)))


def _intrinsic(name, dtype, *args):
    return T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id(INTRINSICS[name]), *args, dtype=dtype)


def _dots(dot, acc, low, even, high, odd):
    """acc (8 x int32) + per lane, the sum of the 4 products u8 x s8 of low . even and of high . odd."""
    if dot == VPDPBUSD:
        return _intrinsic(VPDPBUSD, "int32x8", _intrinsic(VPDPBUSD, "int32x8", acc, low, even), high, odd)
    return acc + _widen(_dots16(low, even, high, odd))


def _dots16(low, even, high, odd):
    """AVX2's int16 stage of _dots: 16 lanes of 4 products (at most 4 x 15 x 127 = 7620 in magnitude)."""
    return _intrinsic(VPMADDUBSW, "int16x16", low, even) + _intrinsic(VPMADDUBSW, "int16x16", high, odd)


def _widen(pairs):
    """int16 lanes added in pairs into int32 lanes."""
    return _intrinsic(VPMADDWD, "int32x8", pairs, T.broadcast(T.int16(1), 16))


def _lane_sum(acc, at):
    """The sum of acc[at:at + 8]."""
    return (acc[at] + acc[at + 1] + acc[at + 2] + acc[at + 3]) + (acc[at + 4] + acc[at + 5] + acc[at + 6] + acc[at + 7])


def _chunks(units: int) -> tuple[int, int]:
    """(units per chunk, chunks): a few long parallel iterations rather than one per unit, since a
    buffer allocated inside a parallel loop comes from TVM's workspace pool, a call per iteration."""
    per_chunk = -(-units // PARALLEL_CHUNKS)
    return per_chunk, -(-units // per_chunk)


def _spread(pair):
    """A step's two group values, each over its group's 4 lanes."""
    return T.Shuffle([pair] * 4, [0, 0, 0, 0, 1, 1, 1, 1])


def _group_scales(q_scale, row, step):
    """A step's two weight-group scales, each over its group's 4 lanes."""
    return _spread(T.Cast("float32x2", q_scale[row, T.ramp(step * 2, 1, 2)]))


def _step_zero(corr, r, step):
    """A step's two zero-point corrections, each in its group's first lane (the 4 lanes are summed later)."""
    return T.Shuffle([corr[r, T.ramp(step * 2, 1, 2)], T.broadcast(T.int32(0), 6)], [0, 2, 2, 2, 1, 2, 2, 2])


def _step_operands(activations, r, q_weight, row, step):
    """(low, even, high, odd): one step's weight nibbles of row `row` and activations of row r."""
    xe, xo = activations[:2]
    packed = T.reinterpret("int32x8", q_weight[row, T.ramp(step * 8, 1, 8)])
    return _low(packed), xe[r, T.ramp(step * 32, 1, 32)], _high(packed), xo[r, T.ramp(step * 32, 1, 32)]


def _step_sums(dot, activations, r, q_weight, row, step, zero):
    """zero + one step's 8 int32 lane sums (4 per group) of weight row `row` with activation row r."""
    return _dots(dot, zero, *_step_operands(activations, r, q_weight, row, step))


def _step_terms(dot, activations, r, q_weight, q_scale, row, step):
    """float32x8 whose lanes sum to one step's two groups' dots, each times its weight and activation scales."""
    corr, sx = activations[2:]
    sums = _step_sums(dot, activations, r, q_weight, row, step, _step_zero(corr, r, step))
    return T.Cast("float32x8", sums) * (_group_scales(q_scale, row, step) * _spread(sx[r, T.ramp(step * 2, 1, 2)]))


# VPHADDD and VPHADDW add adjacent lanes within each 128-bit half, and a step's halves are its two groups:
# two rounds over four steps leave the groups in the order [0, 2, 4, 6, 1, 3, 5, 7] of the block's eight.
NATURAL_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]


def _block_sums(dot, activations, r, q_weight, row, block):
    """int32x8: the block's 8 group dots (without the zero point), in VPHADD's order."""
    operands = [_step_operands(activations, r, q_weight, row, block * BLOCK + i) for i in range(BLOCK)]
    if dot == VPDPBUSD:
        zero = T.broadcast(T.int32(0), 8)
        steps = [_dots(dot, zero, *step) for step in operands]
        return _intrinsic(VPHADDD, "int32x8", _intrinsic(VPHADDD, "int32x8", steps[0], steps[1]),
                          _intrinsic(VPHADDD, "int32x8", steps[2], steps[3]))
    # AVX2 reduces in int16 before widening: a lane then sums 16 products, at most 30480 < 2^15
    steps = [_dots16(*step) for step in operands]
    return _widen(_intrinsic(VPHADDW, "int16x16", _intrinsic(VPHADDW, "int16x16", steps[0], steps[1]),
                             _intrinsic(VPHADDW, "int16x16", steps[2], steps[3])))


# The block's two cache lines of weights 1 KB ahead (read, keep in all levels, data): the GEMV does enough
# work per byte that the hardware prefetcher alone leaves DRAM idle at times. At 2 threads on Zen 3, against
# the same kernel without it: +6-12% at K=2048 and +6-13% at K=8192 (none and 0.5 KB gained less, 2 KB lost
# at K=2048).
PREFETCH_AHEAD_WORDS = 256


def _prefetch_block(q_weight, row, block, line):
    return T.call_llvm_intrin("void", T.llvm_lookup_intrinsic_id("llvm.prefetch"),
                              T.address_of(q_weight[row, block * 32 + PREFETCH_AHEAD_WORDS + line * 16]), 0, 3, 1)


def _block_terms(dot, activations, r, q_weight, q_scale, row, block):
    """float32x8: lane j is the dot of the block's group j (group 8 * block + j of the row) times its scales."""
    corr, sx = activations[2:]
    groups = T.ramp(block * 8, 1, 8)
    sums = T.Shuffle([_block_sums(dot, activations, r, q_weight, row, block)], NATURAL_ORDER) + corr[r, groups]
    return T.Cast("float32x8", sums) * (T.Cast("float32x8", q_scale[row, groups]) * sx[r, groups])


# A kernel per layer shape: sizes read from the buffers made the GEMV 17% and the GEMM 19% slower (LLVM
# unrolls and addresses by constant N and K), more than the 1.5 s of compile time one kernel each saves.
@functools.cache
def gemv(n: int, k: int, scale_dtype: str, dot: str):
    """out[t, N] = the int8 product of each activation row with the 4-bit weight [N, K]."""
    rows_per_chunk, chunks = _chunks(n)
    return _sized(_gemv_template(scale_dtype, dot), n=n, k=k, rows_per_chunk=rows_per_chunk, chunks=chunks)


@functools.cache
def _gemv_template(scale_dtype: str, dot: str):
    @T.prim_func(private=True, s_tir=True)
    def q4_int8_gemv(var_xe: T.handle, var_xo: T.handle, var_corr: T.handle, var_sx: T.handle,
                     var_q_weight: T.handle, var_q_scale: T.handle, var_out: T.handle,
                     n: T.int32, k: T.int32, rows_per_chunk: T.int32, chunks: T.int32):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        q_weight = T.match_buffer(var_q_weight, (n, k // 8), "uint32")
        q_scale = T.match_buffer(var_q_scale, (n, k // GROUP), scale_dtype)
        t = T.int64()
        xe = T.match_buffer(var_xe, (t, k // 2), "int8")
        xo = T.match_buffer(var_xo, (t, k // 2), "int8")
        corr = T.match_buffer(var_corr, (t, k // GROUP), "int32")
        sx = T.match_buffer(var_sx, (t, k // GROUP), "float32")
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
                        for block in T.serial(k // (STEP * BLOCK)):
                            T.evaluate(_prefetch_block(q_weight, row, block, 0))
                            T.evaluate(_prefetch_block(q_weight, row, block, 1))
                            acc[T.ramp(0, 1, 8)] = acc[T.ramp(0, 1, 8)] + _block_terms(
                                dot, (xe, xo, corr, sx), r, q_weight, q_scale, row, block)
                        for step in T.serial(k // STEP % BLOCK):
                            acc[T.ramp(0, 1, 8)] = acc[T.ramp(0, 1, 8)] + _step_terms(
                                dot, (xe, xo, corr, sx), r, q_weight, q_scale, row, k // (STEP * BLOCK) * BLOCK + step)
                        out[r, row] = _lane_sum(acc, 0)

    return q4_int8_gemv


class ExpertSlice:
    """One expert's [N, ...] slice of a stacked [E, N, ...] buffer, indexed as the 2-D one."""

    def __init__(self, stacked, expert):
        self.stacked, self.expert = stacked, expert

    def __getitem__(self, index):
        return self.stacked[(self.expert, *index)]


@functools.cache
def expert_gemv(num_experts: int, n: int, k: int, top_k: int, per_slot: bool, scale_dtype: str, dot: str):
    """out[t, j, N] = the int8 product of token t's activation row (per_slot: row t * top_k + j) with
    expert experts[t, j]'s 4-bit weight [N, K] of the stacked [E, N, K]: gemv's loop over (slot, row)
    units, each reading only its routed expert's row."""
    steps, units = k // STEP, top_k * n
    units_per_chunk, chunks = _chunks(units)
    slots = top_k if per_slot else 1

    @T.prim_func(private=True, s_tir=True)
    def q4_int8_expert_gemv(var_xe: T.handle, var_xo: T.handle, var_corr: T.handle, var_sx: T.handle,
                            var_experts: T.handle, q_weight: T.Buffer((num_experts, n, k // 8), "uint32"),
                            q_scale: T.Buffer((num_experts, n, k // GROUP), scale_dtype), var_out: T.handle):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        t = T.int64()
        xe = T.match_buffer(var_xe, (t * slots, k // 2), "int8")
        xo = T.match_buffer(var_xo, (t * slots, k // 2), "int8")
        corr = T.match_buffer(var_corr, (t * slots, k // GROUP), "int32")
        sx = T.match_buffer(var_sx, (t * slots, k // GROUP), "float32")
        experts = T.match_buffer(var_experts, (t, top_k), "int32")
        out = T.match_buffer(var_out, (t, top_k, n), "float32")
        for chunk in T.parallel(chunks):
            with T.sblock("gemv"):
                T.reads()
                T.writes()
                acc = T.sblock_alloc_buffer((8,), "float32", scope="local")
                for unit_in_chunk, r in T.grid(units_per_chunk, t):
                    unit: T.let[T.int32] = chunk * units_per_chunk + unit_in_chunk
                    if unit < units:
                        j: T.let[T.int32] = unit // n
                        row: T.let[T.int32] = unit % n
                        e: T.let[T.int32] = experts[r, j]
                        xr: T.let[T.int32] = T.Cast("int32", r) * slots + T.min(j, slots - 1)
                        acc[T.ramp(0, 1, 8)] = T.broadcast(T.float32(0), 8)
                        for block in T.serial(steps // BLOCK):
                            T.evaluate(_prefetch_block(ExpertSlice(q_weight, e), row, block, 0))
                            T.evaluate(_prefetch_block(ExpertSlice(q_weight, e), row, block, 1))
                            acc[T.ramp(0, 1, 8)] = acc[T.ramp(0, 1, 8)] + _block_terms(
                                dot, (xe, xo, corr, sx), xr, ExpertSlice(q_weight, e), ExpertSlice(q_scale, e), row, block)
                        for step in T.serial(steps % BLOCK):
                            acc[T.ramp(0, 1, 8)] = acc[T.ramp(0, 1, 8)] + _step_terms(
                                dot, (xe, xo, corr, sx), xr, ExpertSlice(q_weight, e), ExpertSlice(q_scale, e), row,
                                steps // BLOCK * BLOCK + step)
                        out[r, j, row] = _lane_sum(acc, 0)

    return q4_int8_expert_gemv


TOKEN_TILE = 4  # a prefill's rows are padded to a multiple of this (quantize_activations zeroes them)


def weight_rows(n: int) -> int:
    """Rows per register tile: 4 rows x 4 tokens is 16 accumulators and 12 unpacked weight vectors,
    which fit AVX-512's 32 registers (2 x 4 and 2 x 8 measured slower at the SmolLM2 shapes)."""
    return next(r for r in (4, 2, 1) if n % r == 0)


@functools.cache
def gemm(n: int, k: int, scale_dtype: str, dot: str):
    """out[t, N] for a prefill's activations (tp rows, a multiple of TOKEN_TILE) and the 4-bit weight [N, K]."""
    rows = weight_rows(n)
    tiles_per_chunk, chunks = _chunks(n // rows)
    return _sized(_gemm_template(rows, scale_dtype, dot), n=n, k=k, tiles_per_chunk=tiles_per_chunk, chunks=chunks)


@functools.cache
def _gemm_template(rows: int, scale_dtype: str, dot: str):
    tokens = TOKEN_TILE

    @T.prim_func(private=True, s_tir=True)
    def q4_int8_gemm(var_xe: T.handle, var_xo: T.handle, var_corr: T.handle, var_sx: T.handle,
                     var_q_weight: T.handle, var_q_scale: T.handle, var_out: T.handle,
                     n: T.int32, k: T.int32, tiles_per_chunk: T.int32, chunks: T.int32):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        q_weight = T.match_buffer(var_q_weight, (n, k // 8), "uint32")
        q_scale = T.match_buffer(var_q_scale, (n, k // GROUP), scale_dtype)
        t = T.int64()
        tp = T.int64()
        xe = T.match_buffer(var_xe, (tp, k // 2), "int8")
        xo = T.match_buffer(var_xo, (tp, k // 2), "int8")
        corr = T.match_buffer(var_corr, (tp, k // 8), "int32")
        sx = T.match_buffer(var_sx, (tp, k // 8), "float32")
        out = T.match_buffer(var_out, (t, n), "float32")
        for chunk in T.parallel(chunks):
            with T.sblock("gemm"):
                T.reads()
                T.writes()
                acc = T.sblock_alloc_buffer((rows * tokens * 8,), "float32", scope="local")  # [row, token, lane]
                low = T.sblock_alloc_buffer((rows * 32,), "int8", scope="local")
                high = T.sblock_alloc_buffer((rows * 32,), "int8", scope="local")
                scales = T.sblock_alloc_buffer((rows * 8,), "float32", scope="local")
                for token_tile, tile_in_chunk in T.grid(tp // tokens, tiles_per_chunk):
                    row0: T.let[T.int32] = (chunk * tiles_per_chunk + tile_in_chunk) * rows
                    if row0 < n:  # the last chunk may be short
                        for i in T.unroll(rows * tokens):
                            acc[T.ramp(i * 8, 1, 8)] = T.broadcast(T.float32(0), 8)
                        for step in T.serial(k // STEP):
                            for i in T.unroll(rows):
                                packed: T.let[T.int32x8] = T.reinterpret(
                                    "int32x8", q_weight[row0 + i, T.ramp(step * 8, 1, 8)])
                                low[T.ramp(i * 32, 1, 32)] = _low(packed)
                                high[T.ramp(i * 32, 1, 32)] = _high(packed)
                                scales[T.ramp(i * 8, 1, 8)] = _group_scales(q_scale, row0 + i, step)
                            for j in T.unroll(tokens):
                                r: T.let[T.int64] = token_tile * tokens + j
                                even: T.let[T.int8x32] = xe[r, T.ramp(step * 32, 1, 32)]
                                odd: T.let[T.int8x32] = xo[r, T.ramp(step * 32, 1, 32)]
                                zero: T.let[T.int32x8] = corr[r, T.ramp(step * 8, 1, 8)]
                                token_scales: T.let[T.float32x8] = sx[r, T.ramp(step * 8, 1, 8)]
                                for i in T.unroll(rows):
                                    sums: T.let[T.int32x8] = _dots(dot, zero, low[T.ramp(i * 32, 1, 32)], even,
                                                                   high[T.ramp(i * 32, 1, 32)], odd)
                                    acc[T.ramp((i * tokens + j) * 8, 1, 8)] = acc[T.ramp((i * tokens + j) * 8, 1, 8)] \
                                        + T.Cast("float32x8", sums) * (scales[T.ramp(i * 8, 1, 8)] * token_scales)
                        for j, i in T.grid(tokens, rows):
                            if token_tile * tokens + j < t:
                                out[token_tile * tokens + j, row0 + i] = _lane_sum(acc, (i * tokens + j) * 8)

    return q4_int8_gemm
