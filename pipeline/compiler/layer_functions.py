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
