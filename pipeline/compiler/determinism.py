"""Make TVM's shape lowering deterministic.

VMShapeLower walks the users of each symbolic shape slot in pointer-hash
order, and numbers the `shape_func*` PrimFuncs it creates in the order it
meets them (sharing structurally equal ones): two compiles of the same model
get different statement orders, numbers and sharing. This pass sorts each
shape function's independent slot stores by slot index and renames it after
its content, merging the ones that are then equal.
"""
from __future__ import annotations

import tvm
import xxhash
from tvm import relax, tirx
from tvm.relax.expr import _update_type

from llmc.compiler.parallel import rename_global_vars


def _is_shape_func(name: str, func) -> bool:
    return (name.startswith("shape_func") and isinstance(func, tirx.PrimFunc)
            and bool(func.attrs and func.attrs.get("tirx.is_host_func")) and len(func.params) == 1)


def _sorted_stores(func: tirx.PrimFunc) -> tirx.PrimFunc:
    body = func.body
    if isinstance(body, tirx.SeqStmt) and all(isinstance(s, tirx.BufferStore) for s in body.seq):
        return func.with_body(tirx.SeqStmt(sorted(body.seq, key=lambda s: int(s.indices[0]))))
    return func


def _content_name(func: tirx.PrimFunc) -> str:
    return "shape_func_" + xxhash.xxh3_64_hexdigest(func.script(name="shape_func").encode())[:12]


@tvm.transform.module_pass(opt_level=0, name="CanonicalizeShapeFuncs")
def canonicalize_shape_funcs(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    mapping: dict[str, tvm.ir.GlobalVar] = {}
    canonical: dict[str, tuple[tvm.ir.GlobalVar, tirx.PrimFunc]] = {}
    for gv, func in mod.functions_items():
        if _is_shape_func(gv.name_hint, func):
            func = _sorted_stores(func)
            name = _content_name(func)
            if name not in canonical:
                new_gv = tvm.ir.GlobalVar(name)
                _update_type(new_gv, gv.ty)
                canonical[name] = (new_gv, func)
            mapping[gv.name_hint] = canonical[name][0]
    if not mapping:
        return mod
    functions = {}
    for gv, func in mod.functions_items():
        if gv.name_hint in mapping:
            continue
        functions[gv] = rename_global_vars(mod, func, mapping) if isinstance(func, relax.Function) else func
    functions.update(dict(canonical.values()))
    return tvm.IRModule(functions, attrs=mod.attrs, global_infos=mod.global_infos)
