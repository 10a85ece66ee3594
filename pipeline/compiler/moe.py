"""Mixture-of-experts blocks: the router (softmax, top-k, renormalization) and the experts' matmuls.

A token's experts are gathered by index inside the matmul's reduction: decode reads the (dequantized)
weights of the experts the router picked and no others. Each (token, slot) row is a GEMV with the dense
layers' schedule (schedules.py names these `moe_*`); a prefill's rows reread an expert's weights once per
token routed to it (from cache when rows share an expert), not grouped by expert.

Top-k ranks by probability and, among equal probabilities, takes the lowest expert index (transformers'
CPU torch.topk orders ties as its sort happens to leave them).
"""
from __future__ import annotations

import functools

from tvm import te
from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import op
from tvm.script import tirx as T

from llmc.compiler import layers
from llmc.quant import Scheme


@functools.cache
def router(num_experts: int, top_k: int, renormalize: bool):
    """logits [n, E] float32 -> (weights [n, k] float32, experts [n, k] int32)."""
    E, K = num_experts, top_k

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
                prob = T.sblock_alloc_buffer((E,), "float32", scope="local")
                acc = T.sblock_alloc_buffer((3,), "float32", scope="local")   # max logit, sum of exp, picked
                pick = T.sblock_alloc_buffer((2,), "int32", scope="local")    # previous pick, best so far
                acc[0] = logits[r, 0]
                for e in T.serial(E - 1):
                    acc[0] = T.max(acc[0], logits[r, e + 1])
                acc[1] = T.float32(0)
                for e in T.serial(E):
                    prob[e] = T.exp(logits[r, e] - acc[0])
                    acc[1] = acc[1] + prob[e]
                for e in T.serial(E):
                    prob[e] = prob[e] / acc[1]
                acc[2] = T.float32(0)
                pick[0] = -1
                for j in T.serial(K):
                    pick[1] = -1
                    for e in T.serial(E):
                        # after the previous pick in (probability descending, index ascending) order
                        if pick[0] < 0 or prob[e] < prob[T.max(pick[0], 0)] or (
                                prob[e] == prob[T.max(pick[0], 0)] and e > pick[0]):
                            if pick[1] < 0 or prob[e] > prob[T.max(pick[1], 0)]:
                                pick[1] = e
                    pick[1] = T.max(pick[1], 0)  # NaN logits: every expert ineligible
                    experts[r, j] = pick[1]
                    weights[r, j] = prob[pick[1]]
                    acc[2] = acc[2] + prob[pick[1]]
                    pick[0] = pick[1]
                if renormalize:
                    for j in T.serial(K):
                        weights[r, j] = weights[r, j] / acc[2]

    return moe_route


def _expert_matmul(x, experts, weight_at, n: int, k: int, per_slot: bool):
    """y[t, j, n] = sum_k x[t, (j,) k] * W[experts[t, j]][n, k], accumulated in float32."""
    t, slots = experts.shape
    w = te.compute((t, slots, k, n), lambda a, b, c, i: weight_at(experts[a, b], i, c), name="moe_w")
    r = te.reduce_axis((0, k), name="k")

    def row(a, b):
        return (a, b) if per_slot else (a,)

    return te.compute((t, slots, n), lambda a, b, i: te.sum(
        x[(*row(a, b), r)].astype("float32") * w[a, b, r, i].astype("float32"), axis=r), name="moe_acc")


class _Expert:
    """One expert's [out, ...] slice of a stacked tensor, indexed as a 2-D one."""

    def __init__(self, stacked, expert):
        self.stacked, self.expert = stacked, expert

    def __getitem__(self, index):
        return self.stacked[(self.expert, *index)]


class Experts(nn.Module):
    """E stacked [out, in] weights, in the scheme's group quantization (per expert row) or float."""

    def __init__(self, num_experts: int, in_features: int, out_features: int, s: Scheme, act: str):
        self.in_features, self.out_features, self.scheme, self.act = in_features, out_features, s, act
        self.quantized = s.kind == "group"
        if self.quantized:
            self.q_weight = nn.Parameter((num_experts, out_features, s.words(in_features)), "uint32")
            self.q_scale = nn.Parameter((num_experts, out_features, s.groups(in_features)), s.model_dtype)
        else:
            self.weight = nn.Parameter((num_experts, out_features, in_features), s.model_dtype)

    def _params(self) -> list:
        return [self.q_weight, self.q_scale] if self.quantized else [self.weight]

    def forward(self, x: nn.Tensor, experts: nn.Tensor) -> nn.Tensor:
        """x [t, in] (every slot reads its token's row) or [t, k, in] -> [t, k, out] float32."""
        n, k, s, act = self.out_features, self.in_features, self.scheme, self.act
        per_slot = len(x.shape) == 3

        def compute(xt, ids, *tensors):
            if self.quantized:
                q, sc = tensors

                def at(e, i, j):
                    return layers.dequant_group(_Expert(q, e), _Expert(sc, e), s, i, j, True, act)
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
        gate_up, down_proj = (getattr(self, name) for name in self._names)
        gate, up = op.split(gate_up(flat, experts), 2, axis=-1)
        down = down_proj(op.silu(gate) * up, experts)                             # [rows, k, h] float32
        out = op.sum(down * op.reshape(weights, (rows, self.top_k, 1)), axis=1)
        return op.reshape(out.astype(x.dtype), (*lead, h))
