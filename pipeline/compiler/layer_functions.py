"""Decoder layers traced once into private Relax functions that every like layer calls.

Each of a library's prefill, decode and batch functions used to unroll every layer: SmolLM2's 30 layers
made five bodies of about 1,750 bindings each, and tracing them and running the Relax pipeline over them
was most of lower's time. A layer whose class says its forward uses `layer_id` only to name its KV cache
layer (`SHARED_FORWARD = True`) is traced once per input type and per settings: its classes and
non-parameter attributes all the way down, and its parameters' shapes. Every layer alike calls that
function with its own parameters and its layer_id as a value. Any setting this cannot compare (an
object without a value to compare) makes the layer its own function, so no two different layers share.
"""
from __future__ import annotations

import copy
import dataclasses
import re

import numpy as np
import tvm
import tvm_ffi
from tvm import relax, tirx
from tvm.relax.frontend import nn


def call(owner: nn.Module, layer: nn.Module, x: nn.Tensor, cache, layer_id: int) -> nn.Tensor:
    """layer(x, cache, layer_id), as a call of the function traced for layers like it (owner keeps them)."""
    if not getattr(layer, "SHARED_FORWARD", False):
        return layer(x, cache, layer_id)
    builder = relax.BlockBuilder.current()
    named = list(layer.named_parameters())
    function = _function_for(owner, builder, layer, x, cache, named)
    args = [x._expr, cache._expr, relax.prim_value(tirx.IntImm("int64", layer_id)), *(p._expr for _, p in named)]
    return nn.Tensor(_expr=builder.emit(relax.Call(function, args)))


def _function_for(owner, builder, layer, x, cache, named) -> tvm.ir.GlobalVar:
    traced = owner.__dict__.get("_layer_functions")
    if traced is None or traced[0] is not builder:  # a new export: functions of another module
        traced = (builder, {})
        owner.__dict__["_layer_functions"] = traced
    key = settings(layer)
    arg_types = [x._expr.ty, cache._expr.ty]
    for known_types, function in traced[1].get(key, []):
        if tvm_ffi.structural_equal(known_types, arg_types, map_free_vars=True):
            return function
    function = _trace(builder, layer, x, cache, named)
    traced[1].setdefault(key, []).append((arg_types, function))
    return function


def _trace(builder, layer, x, cache, named) -> tvm.ir.GlobalVar:
    x_param = relax.Var("x", x._expr.ty)
    cache_param = relax.Var("paged_kv_cache", cache._expr.ty)
    layer_id = tirx.Var("layer_id", "int64")
    param_vars = [relax.Var(name.replace(".", "_"), p._expr.ty) for name, p in named]
    outer = [p._expr for _, p in named]
    inner_cache = copy.copy(cache)
    inner_cache._expr = cache_param
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", type(layer).__name__).lower()
    try:
        for (_, p), var in zip(named, param_vars):
            p._expr = var
        with builder.function(name, [x_param, cache_param, layer_id, *param_vars], private=True):
            with builder.dataflow():
                out = builder.emit_output(layer(nn.Tensor(_expr=x_param), inner_cache, layer_id)._expr)
            function = builder.emit_func_output(out)
    finally:
        for (_, p), expr in zip(named, outer):
            p._expr = expr
    # the caller's symbolic sizes appear in the parameters' types: the function gets its own (SSA)
    mod = builder.get()
    mod.update_func(function, relax.utils.copy_with_new_vars(mod[function]))
    return function


def settings(module: nn.Module) -> tuple:
    """What a module's forward can read besides its inputs: its class, its parameters' shapes and dtypes,
    and its other attributes, recursively. An attribute with no comparable value is keyed by identity."""
    fields = []
    for name, value in sorted(vars(module).items()):
        if name != "_layer_functions":
            fields.append((name, _value(value)))
    return (type(module).__module__, type(module).__qualname__, tuple(fields))


def _value(value):
    if isinstance(value, nn.Parameter):
        return ("parameter", tuple(int(d) for d in value.shape), value.dtype)
    if isinstance(value, nn.Module):
        return settings(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return (type(value).__name__, value)
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_value(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, _value(v)) for k, v in sorted(value.items())))
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__qualname__, _value(dataclasses.asdict(value)))
    return ("object", id(value))


# What VMShapeLower checks on entry to every function: for a layer function, a few dozen runtime calls per
# layer per token (SmolLM2's decode: 4% slower) that only re-check what its callers, compiled with it,
# pass. A match_shape that stores a symbolic size (seq_len, batch_size) stays: the body reads it.
_ARGUMENT_CHECKS = ("vm.builtin.check_tensor_info", "vm.builtin.check_prim_value_info",
                    "vm.builtin.check_tuple_info")
_ASSERT_EQUAL_TO_IMM = 0  # match_shape's mode for "this dimension must be this constant"


@tvm.transform.module_pass(opt_level=0, name="DropLayerFunctionArgumentChecks")
def drop_argument_checks(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    """After VMShapeLower: private Relax functions without the checks of their parameters' types."""
    out = mod.clone()
    for gv, func in mod.functions_items():
        if isinstance(func, relax.Function) and "global_symbol" not in (func.attrs or {}) \
                and isinstance(func.body, relax.SeqExpr):
            blocks = [relax.BindingBlock([b for b in block.bindings if not _only_checks(b.value)])
                      for block in func.body.blocks]
            out[gv] = relax.Function(func.params, relax.SeqExpr(blocks, func.body.body), func.ret_ty,
                                     func.is_pure, func.attrs)
    return out


def _only_checks(value) -> bool:
    if not (isinstance(value, relax.Call) and isinstance(value.op, relax.ExternFunc)):
        return False
    name = str(value.op.global_symbol)
    if name in _ARGUMENT_CHECKS:
        return True
    if name != "vm.builtin.match_shape":
        return False
    ndim = int(value.args[2])
    return all(int(mode) == _ASSERT_EQUAL_TO_IMM for mode in value.args[3:3 + 2 * ndim:2])
