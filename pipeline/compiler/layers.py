"""Linear and embedding layers for every quantization scheme, as tvm.relax.frontend.nn modules.

Quantized layers compute their matmul and their dequantization in one tensor
expression: the dequantized weight is an expression inside the reduction, never
a tensor, so no float weight is materialized per call. Accumulation is float32.
Parameter names and shapes come from pipeline.quantization, the same spec that
convert_weight writes.
"""
from __future__ import annotations

from tvm import te, tirx
from tvm.relax.frontend import nn

from ..quantization import AWQ_ORDER, Scheme


def _dequant_group(q, scale, s: Scheme, n, k, nk: bool):
    """Dequantized weight element [n, k] of a group-quantized tensor, in the model dtype."""
    per_word = s.per_word
    word = q[n, k // per_word] if nk else q[k // per_word, n]
    sc = scale[n, k // s.group_size] if nk else scale[k // s.group_size, n]
    shift = ((k % per_word) * s.bits).astype("uint32")
    value = tirx.bitwise_and(tirx.shift_right(word, shift), tirx.const((1 << s.bits) - 1, "uint32"))
    return (value.astype(s.model_dtype) - tirx.const(s.max_int, s.model_dtype)) * sc


def _dequant_awq(qweight, qzeros, scales, s: Scheme, n, k):
    """AutoAWQ: w[n, k] = (q[k, n] - z[k / group, n]) * scale[k / group, n], nibbles in AWQ order."""
    def nibble(packed, row, col):
        e = col % 8
        shift = ((e % 2) * 4 + e // 2) * 4  # element e sits in nibble AWQ_ORDER.index(e)
        return tirx.bitwise_and(tirx.shift_right(packed[row, col // 8], shift.astype("uint32")),
                                tirx.const(15, "uint32")).astype(s.model_dtype)

    g = k // s.group_size
    return (nibble(qweight, k, n) - nibble(qzeros, g, n)) * scales[g, n]


assert [((e % 2) * 4 + e // 2) for e in range(8)] == [AWQ_ORDER.index(e) for e in range(8)]


def _matmul_te(x, weight_at, n: int, k: int, out_dtype: str, name: str):
    """y[..., n] = sum_k x[..., k] * weight_at(n, k), accumulated in float32.

    The weight is a stage of its own, `{name}_w` in [k, n] order: schedules inline it into a
    GEMV (nothing materialized) or compute it a tile at a time for a prefill matmul.
    """
    w = te.compute((k, n), lambda j, i: weight_at(i, j), name=f"{name}_w")
    r = te.reduce_axis((0, k), name="k")
    batch = x.shape[:-1]
    acc = te.compute((*batch, n), lambda *i: te.sum(
        x[(*i[:-1], r)].astype("float32") * w[r, i[-1]].astype("float32"), axis=r), name=f"{name}_acc")
    if out_dtype == "float32":
        return acc
    return te.compute((*batch, n), lambda *i: acc[i].astype(out_dtype), name=name)


class GroupQuantLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, s: Scheme, bias: bool = False,
                 out_dtype: str | None = None, bias_dtype: str | None = None):
        self.in_features, self.out_features, self.scheme = in_features, out_features, s
        self.out_dtype = out_dtype or s.model_dtype
        self.nk = s.layout == "NK"
        words, groups = s.words(in_features), s.groups(in_features)
        if self.nk:
            self.q_weight = nn.Parameter((out_features, words), "uint32")
            self.q_scale = nn.Parameter((out_features, groups), s.model_dtype)
        else:
            self.q_weight = nn.Parameter((words, out_features), "uint32")
            self.q_scale = nn.Parameter((groups, out_features), s.model_dtype)
        self.bias = nn.Parameter((out_features,), bias_dtype or s.model_dtype) if bias else None

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        s, n, k, nk = self.scheme, self.out_features, self.in_features, self.nk
        y = nn.op.tensor_expr_op(
            lambda xt, q, sc: _matmul_te(xt, lambda i, j: _dequant_group(q, sc, s, i, j, nk), n, k,
                                         self.out_dtype, "q_matmul"),
            "q_matmul", [x, self.q_weight, self.q_scale])
        return y + self.bias if self.bias is not None else y


class AWQLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, s: Scheme, bias: bool = False,
                 out_dtype: str | None = None, bias_dtype: str | None = None):
        self.in_features, self.out_features, self.scheme = in_features, out_features, s
        self.out_dtype = out_dtype or s.model_dtype
        self.qweight = nn.Parameter((in_features, out_features // 8), "uint32")
        self.qzeros = nn.Parameter((in_features // s.group_size, out_features // 8), "uint32")
        self.scales = nn.Parameter((in_features // s.group_size, out_features), s.model_dtype)
        self.bias = nn.Parameter((out_features,), bias_dtype or s.model_dtype) if bias else None

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        s, n, k = self.scheme, self.out_features, self.in_features
        y = nn.op.tensor_expr_op(
            lambda xt, q, z, sc: _matmul_te(xt, lambda i, j: _dequant_awq(q, z, sc, s, i, j), n, k,
                                            self.out_dtype, "awq_matmul"),
            "awq_matmul", [x, self.qweight, self.qzeros, self.scales])
        return y + self.bias if self.bias is not None else y


class FloatLinear(nn.Module):
    """nn.Linear's parameters, with a float32-accumulating matmul over the [out, in] weight."""

    def __init__(self, in_features: int, out_features: int, dtype: str, bias: bool = False,
                 out_dtype: str | None = None, bias_dtype: str | None = None):
        self.in_features, self.out_features = in_features, out_features
        self.out_dtype = out_dtype or dtype
        self.weight = nn.Parameter((out_features, in_features), dtype)
        self.bias = nn.Parameter((out_features,), bias_dtype or dtype) if bias else None

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        n, k = self.out_features, self.in_features
        y = nn.op.tensor_expr_op(
            lambda xt, w: _matmul_te(xt, lambda i, j: w[i, j], n, k, self.out_dtype, "matmul"),
            "matmul", [x, self.weight])
        return y + self.bias if self.bias is not None else y


def linear(in_features: int, out_features: int, s: Scheme, *, bias=False, final=False, out_dtype=None,
           bias_dtype=None) -> nn.Module:
    """The Linear layer a scheme stores for this weight (see quantization.is_quantized)."""
    if s.kind == "group":
        return GroupQuantLinear(in_features, out_features, s, bias, out_dtype, bias_dtype)
    if s.kind == "awq" and not final:
        return AWQLinear(in_features, out_features, s, bias, out_dtype, bias_dtype)
    return FloatLinear(in_features, out_features, s.model_dtype, bias, out_dtype, bias_dtype)


class Embedding(nn.Module):
    """A token embedding that can also serve as the (tied) output head."""

    def __init__(self, vocab: int, dim: int, s: Scheme):
        self.vocab, self.dim, self.scheme = vocab, dim, s
        self.quantized = s.kind == "group"
        if self.quantized:
            self.q_weight = nn.Parameter((vocab, s.words(dim)), "uint32")
            self.q_scale = nn.Parameter((vocab, s.groups(dim)), s.model_dtype)
        else:
            self.weight = nn.Parameter((vocab, dim), s.model_dtype)

    def _weight_at(self, tensors):
        if self.quantized:
            q, sc = tensors
            return lambda i, j: _dequant_group(q, sc, self.scheme, i, j, True)
        (w,) = tensors
        return lambda i, j: w[i, j]

    def _params(self):
        return [self.q_weight, self.q_scale] if self.quantized else [self.weight]

    def forward(self, ids: nn.Tensor) -> nn.Tensor:
        dim, dtype = self.dim, self.scheme.model_dtype

        def take(idx, *tensors):
            at = self._weight_at(tensors)
            return te.compute((idx.shape[0], dim), lambda i, j: at(idx[i], j).astype(dtype), name="embed")

        return nn.op.tensor_expr_op(take, "embed", [ids, *self._params()])

    def lm_head(self, x: nn.Tensor) -> nn.Tensor:
        vocab, dim = self.vocab, self.dim
        return nn.op.tensor_expr_op(
            lambda xt, *tensors: _matmul_te(xt, self._weight_at(tensors), vocab, dim, "float32", "lm_head"),
            "lm_head", [x, *self._params()])
