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

from llmc.quant.layout import Scheme, awq_slot
from llmc.compiler import int8_matmul


def dequant_group(q, scale, s: Scheme, n, k, nk: bool, dtype: str):
    """Dequantized weight element [n, k] of a group-quantized tensor, computed in dtype (the activation
    dtype: float32 on CPUs, where (q - max_int) * scale is then exact; the model dtype on GPUs, as MLC)."""
    word = q[n, k // s.per_word] if nk else q[k // s.per_word, n]
    sc = scale[n, k // s.group_size] if nk else scale[k // s.group_size, n]
    value = tirx.bitwise_and(tirx.shift_right(word, s.shift(k).astype("uint32")), tirx.const(s.mask, "uint32"))
    return (value.astype(dtype) - tirx.const(s.max_int, dtype)) * sc.astype(dtype)


def _dequant_awq(qweight, qzeros, scales, s: Scheme, n, k, dtype: str):
    """AutoAWQ: w[n, k] = (q[k, n] - z[k / group, n]) * scale[k / group, n], nibbles in AWQ order."""
    def nibble(packed, row, col):
        shift = awq_slot(col % s.per_word) * s.bits
        return tirx.bitwise_and(tirx.shift_right(packed[row, col // s.per_word], shift.astype("uint32")),
                                tirx.const(s.mask, "uint32")).astype(dtype)

    g = k // s.group_size
    return (nibble(qweight, k, n) - nibble(qzeros, g, n)) * scales[g, n].astype(dtype)



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


class _Linear(nn.Module):
    """y = x W^T (+ b): one fused tensor expression over whatever the weight is stored as.

    act is the activation dtype: the output (and a bias, cast on the fly) use it, whatever
    the dtype the weights are stored in; out_dtype overrides it (e.g. float32 logits).
    """

    def __init__(self, in_features: int, out_features: int, act: str, out_dtype: str | None):
        self.in_features, self.out_features = in_features, out_features
        self.act = act
        self.out_dtype = out_dtype or act

    def _add_bias(self, bias: bool, dtype: str) -> None:
        # Called after the weights: parameters are exported in the order they are set.
        self.bias = nn.Parameter((self.out_features,), dtype) if bias else None

    def _params(self) -> list:
        raise NotImplementedError

    def _weight_at(self, tensors):
        raise NotImplementedError

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        n, k = self.out_features, self.in_features
        y = nn.op.tensor_expr_op(
            lambda xt, *tensors: _matmul_te(xt, self._weight_at(tensors), n, k, self.out_dtype, "matmul"),
            "matmul", [x, *self._params()])
        return self._with_bias(y)

    def _with_bias(self, y: nn.Tensor) -> nn.Tensor:
        return y if self.bias is None else y + _as_dtype(self.bias, self.out_dtype)


class GroupQuantLinear(_Linear):
    def __init__(self, in_features: int, out_features: int, s: Scheme, act: str, bias: bool = False,
                 out_dtype: str | None = None, bias_dtype: str | None = None):
        super().__init__(in_features, out_features, act, out_dtype)
        self.scheme, self.nk = s, s.layout == "NK"
        words, groups = s.words(in_features), s.groups(in_features)
        rows, cols = (out_features, words) if self.nk else (words, out_features)
        self.q_weight = nn.Parameter((rows, cols), "uint32")
        self.q_scale = nn.Parameter((out_features, groups) if self.nk else (groups, out_features), s.model_dtype)
        self._add_bias(bias, bias_dtype or s.model_dtype)

    int8_activations = None  # the dot instruction, set by use_int8_activations

    def _params(self) -> list:
        return [self.q_weight, self.q_scale]

    def _weight_at(self, tensors):
        q, sc = tensors
        return lambda i, j: dequant_group(q, sc, self.scheme, i, j, self.nk, self.act)

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        if not self.int8_activations:
            return super().forward(x)
        y = _int8_matmul(x, self.q_weight, self.q_scale, self.out_features, self.in_features, self.int8_activations)
        return self._with_bias(_as_dtype(y, self.out_dtype))


class AWQLinear(_Linear):
    def __init__(self, in_features: int, out_features: int, s: Scheme, act: str, bias: bool = False,
                 out_dtype: str | None = None, bias_dtype: str | None = None):
        super().__init__(in_features, out_features, act, out_dtype)
        self.scheme = s
        self.qweight = nn.Parameter((in_features, out_features // s.per_word), "uint32")
        self.qzeros = nn.Parameter((in_features // s.group_size, out_features // s.per_word), "uint32")
        self.scales = nn.Parameter((in_features // s.group_size, out_features), s.model_dtype)
        self._add_bias(bias, bias_dtype or s.model_dtype)

    def _params(self) -> list:
        return [self.qweight, self.qzeros, self.scales]

    def _weight_at(self, tensors):
        q, z, sc = tensors
        return lambda i, j: _dequant_awq(q, z, sc, self.scheme, i, j, self.act)


class FloatLinear(_Linear):
    def __init__(self, in_features: int, out_features: int, dtype: str, act: str, bias: bool = False,
                 out_dtype: str | None = None, bias_dtype: str | None = None):
        super().__init__(in_features, out_features, act, out_dtype)
        self.weight = nn.Parameter((out_features, in_features), dtype)
        self._add_bias(bias, bias_dtype or dtype)

    def _params(self) -> list:
        return [self.weight]

    def _weight_at(self, tensors):
        (w,) = tensors
        return lambda i, j: w[i, j]


def linear(in_features: int, out_features: int, s: Scheme, act: str, *, bias=False, final=False, out_dtype=None,
           bias_dtype=None) -> nn.Module:
    """The Linear layer a scheme stores for this weight (see quantization.is_quantized)."""
    if final:
        s = s.for_kind("final_fc")
    if s.kind == "group":
        return GroupQuantLinear(in_features, out_features, s, act, bias, out_dtype, bias_dtype)
    if s.kind == "awq" and not final:
        return AWQLinear(in_features, out_features, s, act, bias, out_dtype, bias_dtype)
    return FloatLinear(in_features, out_features, s.model_dtype, act, bias, out_dtype, bias_dtype)


class Embedding(nn.Module):
    """A token embedding that can also serve as the (tied) output head."""

    def __init__(self, vocab: int, dim: int, s: Scheme, act: str):
        s = s.for_kind("embedding")
        self.vocab, self.dim, self.scheme, self.act = vocab, dim, s, act
        self.quantized = s.kind == "group"
        if self.quantized:
            self.q_weight = nn.Parameter((vocab, s.words(dim)), "uint32")
            self.q_scale = nn.Parameter((vocab, s.groups(dim)), s.model_dtype)
        else:
            self.weight = nn.Parameter((vocab, dim), s.model_dtype)

    def _weight_at(self, tensors):
        if self.quantized:
            q, sc = tensors
            return lambda i, j: dequant_group(q, sc, self.scheme, i, j, True, self.act)
        (w,) = tensors
        return lambda i, j: w[i, j]

    def _params(self):
        return [self.q_weight, self.q_scale] if self.quantized else [self.weight]

    def forward(self, ids: nn.Tensor) -> nn.Tensor:
        dim, dtype = self.dim, self.act

        def take(idx, *tensors):
            at = self._weight_at(tensors)
            return te.compute((idx.shape[0], dim), lambda i, j: at(idx[i], j).astype(dtype), name="embed")

        return nn.op.tensor_expr_op(take, "embed", [ids, *self._params()])

    int8_activations = None  # the dot instruction, set by use_int8_activations

    def lm_head(self, x: nn.Tensor) -> nn.Tensor:
        vocab, dim = self.vocab, self.dim
        if self.int8_activations:
            return _int8_matmul(x, self.q_weight, self.q_scale, vocab, dim, self.int8_activations)
        return nn.op.tensor_expr_op(
            lambda xt, *tensors: _matmul_te(xt, self._weight_at(tensors), vocab, dim, "float32", "lm_head"),
            "lm_head", [x, *self._params()])


def _as_dtype(t: nn.Tensor, dtype: str) -> nn.Tensor:
    """t in dtype, with no cast op when it already is."""
    return t if t.dtype == dtype else t.astype(dtype)


def _one_token(x: nn.Tensor) -> bool:
    """Decode-shaped input: one token per sequence (a GEMV, not a prefill matmul)."""
    return isinstance(x.shape[-2], int) and x.shape[-2] == 1


def _int8_matmul(x: nn.Tensor, q_weight: nn.Parameter, q_scale: nn.Parameter, n: int, k: int,
                 dot: str) -> nn.Tensor:
    """x W^T with x quantized to int8: a GEMV for one token per sequence, else a prefill GEMM over
    rows padded to whole token tiles."""
    rows = 1
    for d in x.shape[:-1]:
        rows = rows * d
    decode = _one_token(x)
    act = int8_activations(nn.op.reshape(x, (rows, k)), decode)
    kernel, name = (int8_matmul.gemv, "q4_int8_gemv") if decode else (int8_matmul.gemm, "q4_int8_gemm")
    y = nn.op.tensor_ir_op(kernel(n, k, q_scale.dtype, dot), name, [*act, q_weight, q_scale],
                           nn.Tensor.placeholder((rows, n), "float32"))
    return nn.op.reshape(y, (*x.shape[:-1], n))


def int8_activations(flat: nn.Tensor, decode: bool) -> tuple:
    """flat [rows, K] quantized to int8 for the int8 kernels (a prefill's rows padded to whole token tiles)."""
    rows, k = flat.shape
    tile = 1 if decode else int8_matmul.TOKEN_TILE
    padded = rows if decode else (rows + tile - 1) // tile * tile
    return nn.op.tensor_ir_op(int8_matmul.quantize_activations(k, decode), "quantize_int8", [flat], [
        nn.Tensor.placeholder(shape, dtype) for shape, dtype in int8_matmul.activation_shapes(padded, k, decode)])


def int8_ok(s: Scheme, n: int, k: int) -> bool:
    """The layers int8_matmul covers."""
    return int8_matmul.scheme_ok(s) and int8_matmul.shape_ok(n, k)


def use_int8_activations(model: nn.Module, dot: str) -> int:
    """Switch every eligible 4-bit layer of model to matmuls with int8-quantized activations
    (--opt O2/O3), decode and prefill, whose dot products use the instruction dot
    (int8_matmul.dot_instruction). Returns how many layers were switched."""
    switched = 0
    for module in _modules(model):
        if isinstance(module, GroupQuantLinear) and int8_ok(module.scheme, module.out_features, module.in_features):
            module.int8_activations, switched = dot, switched + 1
        elif isinstance(module, Embedding) and module.quantized and int8_ok(module.scheme, module.vocab, module.dim):
            module.int8_activations, switched = dot, switched + 1
        elif getattr(module, "int8_eligible", None) is not None and module.int8_eligible():  # moe.Experts
            module.int8_activations, switched = dot, switched + 1
    return switched


def _modules(root: nn.Module):
    yield root
    for value in vars(root).values():
        children = value if isinstance(value, nn.ModuleList) else [value]
        for child in children:
            if isinstance(child, nn.Module):
                yield from _modules(child)


class RMSNorm(nn.Module):
    """RMSNorm whose weight keeps its stored dtype and is cast to the activations'. With offset, the
    scale is offset + weight (Gemma stores w and multiplies by 1 + w)."""

    def __init__(self, size: int, eps: float, dtype: str, offset: float = 0.0):
        self.eps, self.offset = eps, offset
        self.weight = nn.Parameter((size,), dtype)

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        scale = _as_dtype(self.weight, x.dtype)
        if self.offset:
            scale = scale + nn.Tensor.from_scalar(self.offset, x.dtype)
        return nn.op.rms_norm(x, scale, axes=-1, epsilon=self.eps)


class LayerNorm(nn.Module):
    def __init__(self, size: int, eps: float, dtype: str):
        self.eps = eps
        self.weight = nn.Parameter((size,), dtype)
        self.bias = nn.Parameter((size,), dtype)

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        return nn.op.layer_norm(x, [x.shape[-1]], _as_dtype(self.weight, x.dtype), _as_dtype(self.bias, x.dtype),
                                eps=self.eps)


def mask_beyond(logits: nn.Tensor, active: int) -> nn.Tensor:
    """Logits of ids at or past `active` (rows that pad the vocabulary, no token of the tokenizer) set to
    -inf, so no sampler ever picks them."""
    def mask(x):
        return te.compute(x.shape, lambda *i: tirx.Select(i[-1] < active, x(*i), tirx.min_value(x.dtype)),
                          name="mask_padded_vocab")

    return nn.op.tensor_expr_op(mask, "mask_padded_vocab", [logits])
