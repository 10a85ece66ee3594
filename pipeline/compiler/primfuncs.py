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
