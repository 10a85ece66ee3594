"""Mixture-of-experts blocks: the router (softmax, top-k, renormalization) and the experts' matmuls.

Decode (up to GEMV_ROWS tokens) gathers each token's experts by index inside the matmul's reduction: it
reads the (dequantized) weights of the experts the router picked and no others, each (token, slot) row a
GEMV with the dense layers' schedule (schedules.py names these `moe_*`). A prefill or a batch decode
groups its rows by expert (a counting sort, `grouping`) and runs `grouped_matmul`: each expert's weight
panel is dequantized once per call and multiplied with that expert's rows a register tile at a time.

Top-k ranks by probability in the order transformers' CPU torch.topk gives, ties included (topk.py).
"""
from __future__ import annotations

import functools

from tvm import te
from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import op
from tvm.script import tirx as T

from llmc.compiler import int8_matmul, layers, topk
from llmc.compiler.int8_matmul import ExpertSlice
from llmc.quant import Scheme


@functools.cache
def router(num_experts: int, top_k: int, renormalize: bool):
    """logits [n, E] float32 -> (weights [n, k] float32, experts [n, k] int32)."""
    E, K = num_experts, top_k
    select = topk.macro(E, K)

    @T.prim_func(private=True, s_tir=True)
    def moe_route(var_logits: T.handle, var_weights: T.handle, var_experts: T.handle):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        n = T.int64()
        logits = T.match_buffer(var_logits, (n, E), "float32")
        weights = T.match_buffer(var_weights, (n, K), "float32")
        experts = T.match_buffer(var_experts, (n, K), "int32")
        for r in T.serial(n):
            with T.sblock("route"):
                T.reads()
                T.writes()
                acc = T.sblock_alloc_buffer((3,), "float32", scope="local")   # max logit, sum of exp, picked
                qv = T.sblock_alloc_buffer((E,), "float32", scope="local")
                qi = T.sblock_alloc_buffer((E,), "int32", scope="local")
                hv = T.sblock_alloc_buffer((2,), "float32", scope="local")
                hi = T.sblock_alloc_buffer((2,), "int32", scope="local")
                reg = T.sblock_alloc_buffer((topk.REGISTERS,), "int32", scope="local")
                acc[0] = logits[r, 0]
                for e in T.serial(E - 1):
                    acc[0] = T.max(acc[0], logits[r, e + 1])
                acc[1] = T.float32(0)
                for e in T.serial(E):
                    qv[e] = T.exp(logits[r, e] - acc[0])
                    acc[1] = acc[1] + qv[e]
                for e in T.serial(E):
                    qv[e] = qv[e] / acc[1]  # the probabilities, each with its expert, sorted by select
                    qi[e] = e
                select(qv, qi, hv, hi, reg)
                acc[2] = T.float32(0)
                for j in T.serial(K):
                    experts[r, j] = qi[j]
                    weights[r, j] = qv[j]
                    acc[2] = acc[2] + qv[j]
                if renormalize:
                    for j in T.serial(K):
                        weights[r, j] = weights[r, j] / acc[2]

    return moe_route


@functools.cache
def grouping(num_experts: int, top_k: int):
    """experts [n, k] int32 -> (order [n * k]: the (token, slot) rows t * k + j sorted by expert, stably;
    offsets [E + 1]: expert e's rows are order[offsets[e]:offsets[e + 1]]). A counting sort, serial: a
    prefill chunk has at most a few thousand rows."""
    E, K = num_experts, top_k

    @T.prim_func(private=True, s_tir=True)
    def moe_group(var_experts: T.handle, var_order: T.handle, var_offsets: T.handle):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        n = T.int64()
        experts = T.match_buffer(var_experts, (n, K), "int32")
        order = T.match_buffer(var_order, (n * K,), "int32")
        offsets = T.match_buffer(var_offsets, (E + 1,), "int32")
        with T.sblock("group"):
            T.reads()
            T.writes()
            fill = T.sblock_alloc_buffer((E,), "int32", scope="local")
            for e in T.serial(E + 1):
                offsets[e] = 0
            for i in T.serial(n * K):
                offsets[experts[i // K, i % K] + 1] = offsets[experts[i // K, i % K] + 1] + 1
            for e in T.serial(E):
                offsets[e + 1] = offsets[e + 1] + offsets[e]
                fill[e] = offsets[e]
            for i in T.serial(n * K):
                order[fill[experts[i // K, i % K]]] = T.Cast("int32", i)
                fill[experts[i // K, i % K]] = fill[experts[i // K, i % K]] + 1

    return moe_group


ROW_TILE = 8
GEMV_ROWS = 8  # tokens up to which (decode, a small batch) each (token, slot) row is its own GEMV


def _lanes(n: int) -> int:
    return next(c for c in (32, 16, 8, 4, 2, 1) if n % c == 0)


@functools.cache
def grouped_matmul(num_experts: int, n: int, k: int, top_k: int, per_slot: bool, s: Scheme, act: str):
    """A prefill's expert matmul grouped by expert: y[t, j, :] = x[t, (j,) :] W[experts[t, j]]^T for every
    (token, slot), each task one expert's column tile: its weight panel [k, lanes] dequantized once into a
    local buffer, then its rows (order[offsets[e]:offsets[e + 1]]) ROW_TILE at a time, accumulated in
    registers over k. Each expert's weights are read once per call. x is [t, k] (every slot reads its
    token's row) or [t, top_k, k]; weights are the scheme's stacked q_weight, q_scale or float weight."""
    E, N, K, S, L, R = num_experts, n, k, top_k, _lanes(n), ROW_TILE
    tiles = N // L
    quantized = s.kind == "group"
    words, groups = (s.words(K), s.groups(K)) if quantized else (0, 0)

    # The panel is filled a packed word at a time: the tile's L words of one k-range (one per weight row,
    # a gather) are loaded once into `word` and give per_word rows of the panel by shifts (a group's scale
    # covers whole words), not a gather per element.
    per_word = s.per_word if quantized else 1
    padded = words * per_word if quantized else K

    def unpacked(word, scale, v):
        value = T.bitwise_and(T.shift_right(word, T.uint32(v * s.bits)), T.uint32(s.mask))
        return (value.astype("float32") - T.float32(s.max_int)) * scale

    def x_at(x, src, col):
        return (x[src // S, src % S, col] if per_slot else x[src // S, col]).astype("float32")

    x_shape = (lambda t: (t, S, K)) if per_slot else (lambda t: (t, K))
    w_shapes = [((E, N, words), "uint32"), ((E, N, groups), s.model_dtype)] if quantized else [((E, N, K), s.model_dtype)]

    @T.prim_func(private=True, s_tir=True)
    def moe_grouped(var_x: T.handle, var_order: T.handle, var_offsets: T.handle, var_w0: T.handle,
                    var_w1: T.handle, var_y: T.handle):
        T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})
        t = T.int64()
        x = T.match_buffer(var_x, x_shape(t), act)
        order = T.match_buffer(var_order, (t * S,), "int32")
        offsets = T.match_buffer(var_offsets, (E + 1,), "int32")
        w0 = T.match_buffer(var_w0, w_shapes[0][0], w_shapes[0][1])
        w1 = T.match_buffer(var_w1, w_shapes[-1][0], w_shapes[-1][1])
        y = T.match_buffer(var_y, (t, S, N), "float32")
        for task in T.parallel(E * tiles):
            with T.sblock("grouped"):
                T.reads()
                T.writes()
                panel = T.sblock_alloc_buffer((padded, L), "float32", scope="local")
                word = T.sblock_alloc_buffer((L,), "uint32", scope="local")
                scale = T.sblock_alloc_buffer((L,), "float32", scope="local")
                acc = T.sblock_alloc_buffer((R, L), "float32", scope="local")
                src = T.sblock_alloc_buffer((R,), "int32", scope="local")
                e: T.let[T.int32] = T.Cast("int32", task // tiles)
                col0: T.let[T.int32] = T.Cast("int32", task % tiles) * L
                start: T.let[T.int32] = offsets[e]
                end: T.let[T.int32] = offsets[e + 1]
                if end > start:
                    if quantized:
                        for wi in T.serial(words):
                            for j in T.vectorized(L):
                                word[j] = w0[e, col0 + j, wi]
                                scale[j] = T.Cast("float32", w1[e, col0 + j, wi * per_word // s.group_size])
                            for v in T.unroll(per_word):
                                for j in T.vectorized(L):
                                    panel[wi * per_word + v, j] = unpacked(word[j], scale[j], v)
                    else:
                        for c in T.serial(K):
                            for j in T.vectorized(L):
                                panel[c, j] = T.Cast("float32", w0[e, col0 + j, c])
                    for rt in T.serial((end - start + R - 1) // R):
                        for i in T.unroll(R):
                            src[i] = order[T.min(start + rt * R + i, end - 1)]
                            for j in T.vectorized(L):
                                acc[i, j] = T.float32(0)
                        for c in T.serial(K):
                            for i in T.unroll(R):
                                for j in T.vectorized(L):
                                    acc[i, j] = acc[i, j] + x_at(x, src[i], c) * panel[c, j]
                        for i in T.serial(R):
                            if start + rt * R + i < end:
                                for j in T.vectorized(L):
                                    y[src[i] // S, src[i] % S, col0 + j] = acc[i, j]

    return moe_grouped


def _expert_matmul(x, experts, weight_at, n: int, k: int, per_slot: bool):
    """y[t, j, n] = sum_k x[t, (j,) k] * W[experts[t, j]][n, k], accumulated in float32."""
    t, slots = experts.shape
    w = te.compute((t, slots, k, n), lambda a, b, c, i: weight_at(experts[a, b], i, c), name="moe_w")
    r = te.reduce_axis((0, k), name="k")

    def row(a, b):
        return (a, b) if per_slot else (a,)

    return te.compute((t, slots, n), lambda a, b, i: te.sum(
        x[(*row(a, b), r)].astype("float32") * w[a, b, r, i].astype("float32"), axis=r), name="moe_acc")


class Experts(nn.Module):
    """E stacked [out, in] weights, in the scheme's group quantization (per expert row) or float."""

    def __init__(self, num_experts: int, in_features: int, out_features: int, s: Scheme, act: str):
        self.in_features, self.out_features, self.scheme, self.act = in_features, out_features, s, act
        self.num_experts = num_experts
        self.quantized = s.kind == "group"
        if self.quantized:
            self.q_weight = nn.Parameter((num_experts, out_features, s.words(in_features)), "uint32")
            self.q_scale = nn.Parameter((num_experts, out_features, s.groups(in_features)), s.model_dtype)
        else:
            self.weight = nn.Parameter((num_experts, out_features, in_features), s.model_dtype)

    def _params(self) -> list:
        return [self.q_weight, self.q_scale] if self.quantized else [self.weight]

    int8_activations = None  # the dot instruction, set by layers.use_int8_activations

    def int8_eligible(self) -> bool:
        return self.quantized and layers.int8_ok(self.scheme, self.out_features, self.in_features)

    def forward(self, x: nn.Tensor, experts: nn.Tensor, groups: tuple | None = None) -> nn.Tensor:
        """x [t, in] (every slot reads its token's row) or [t, k, in] -> [t, k, out] float32; groups, the
        rows grouped by expert (grouping's order and offsets), for a prefill."""
        n, k, s, act = self.out_features, self.in_features, self.scheme, self.act
        per_slot = len(x.shape) == 3
        if groups is not None:
            t, top_k = experts.shape
            kernel = grouped_matmul(self.num_experts, n, k, top_k, per_slot, s, act)
            weights = self._params() if self.quantized else [self.weight, self.weight]
            return nn.op.tensor_ir_op(kernel, "moe_grouped", [x, *groups, *weights],
                                      nn.Tensor.placeholder((t, top_k, n), "float32"))
        if self.int8_activations:  # decode at O2/O3: the dense layers' int8 GEMV, on the routed experts' rows
            t, top_k = experts.shape
            act = layers.int8_activations(op.reshape(x, (t * top_k, k)) if per_slot else x, decode=True)
            kernel = int8_matmul.expert_gemv(self.num_experts, n, k, top_k, per_slot, self.q_scale.dtype,
                                             self.int8_activations)
            return nn.op.tensor_ir_op(kernel, "q4_int8_expert_gemv", [*act, experts, self.q_weight, self.q_scale],
                                      nn.Tensor.placeholder((t, top_k, n), "float32"))

        def compute(xt, ids, *tensors):
            if self.quantized:
                q, sc = tensors

                def at(e, i, j):
                    return layers.dequant_group(ExpertSlice(q, e), ExpertSlice(sc, e), s, i, j, True, act)
            else:
                (w,) = tensors

                def at(e, i, j):
                    return w[e, i, j]
            return _expert_matmul(xt, ids, at, n, k, per_slot)

        return nn.op.tensor_expr_op(compute, "moe_matmul", [x, experts, *self._params()])


class SparseMoE(nn.Module):
    """Router, top-k and the routed experts' SwiGLU MLPs, summed with the routing weights."""

    def __init__(self, cfg: dict, s: Scheme, act: str, names: tuple[str, str] = ("moe_gate_up_proj", "moe_down_proj")):
        h, inter, e = cfg["hidden_size"], cfg["moe_intermediate_size"], cfg["num_experts"]
        self.top_k, self.num_experts, self.renormalize = cfg["num_experts_per_tok"], e, cfg["norm_topk_prob"]
        self.gate = layers.FloatLinear(h, e, s.model_dtype, act, out_dtype="float32")
        self._names = names  # the experts' parameter names: MLC's mixtral says e1_e3 and e2
        setattr(self, names[0], Experts(e, h, 2 * inter, s, act))
        setattr(self, names[1], Experts(e, inter, h, s, act))

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        *lead, h = x.shape
        rows = 1
        for d in lead:
            rows = rows * d
        flat = op.reshape(x, (rows, h))
        weights, experts = nn.op.tensor_ir_op(
            router(self.num_experts, self.top_k, self.renormalize), "moe_route", [self.gate(flat)],
            [nn.Tensor.placeholder((rows, self.top_k), "float32"), nn.Tensor.placeholder((rows, self.top_k), "int32")])
        groups = None
        if not (isinstance(rows, int) and rows <= GEMV_ROWS):  # a prefill: rows grouped by expert
            order, offsets = nn.op.tensor_ir_op(
                grouping(self.num_experts, self.top_k), "moe_group", [experts],
                [nn.Tensor.placeholder((rows * self.top_k,), "int32"),
                 nn.Tensor.placeholder((self.num_experts + 1,), "int32")])
            groups = (order, offsets)
        gate_up, down_proj = (getattr(self, name) for name in self._names)
        gate, up = op.split(gate_up(flat, experts, groups), 2, axis=-1)
        down = down_proj(op.silu(gate) * up, experts, groups)                     # [rows, k, h] float32
        out = op.sum(down * op.reshape(weights, (rows, self.top_k, 1)), axis=1)
        return op.reshape(out.astype(x.dtype), (*lead, h))
