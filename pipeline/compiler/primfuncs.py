"""Module passes over TIR functions: rewrite each PrimFunc, keep the module when nothing changed."""
from __future__ import annotations

from collections.abc import Callable

import tvm
from tvm import tirx


def map_prim_funcs(mod: tvm.IRModule, rewrite: Callable[[str, tirx.PrimFunc], tirx.PrimFunc | None]) -> tvm.IRModule:
    """mod with every PrimFunc replaced by rewrite(name, func); None or the same function keeps it."""
    updates = {}
    for gv, func in mod.functions_items():
        if isinstance(func, tirx.PrimFunc):
            new = rewrite(gv.name_hint, func)
            if new is not None and not new.same_as(func):
                updates[gv] = new
    if not updates:
        return mod
    mod = mod.clone()
    for gv, func in updates.items():
        mod[gv] = func
    return mod


def all_noalias(mod: tvm.IRModule) -> tvm.IRModule:
    """mod with every PrimFunc marked tirx.noalias. TVM's LLVM code generator keeps that attribute as state
    of the whole module: every function is generated as the alphabetically last one says (noalias
    pointers, compute functions kept out of line, or neither). A kernel's machine code would then depend on
    which kernels share its module; marked alike, it does not. None of llmc's or TVM's CPU kernels is
    given one buffer twice."""
    return map_prim_funcs(mod, lambda _name, func: None if func.attrs is not None and func.attrs.get(
        "tirx.noalias") else func.with_attr("tirx.noalias", True))
