"""A module's Relax pipeline run on groups of its functions in parallel threads, and the results merged.

TVM's Relax passes are C++ and release the GIL. Each group gets every kernel of the module and runs the
same passes; the merge keeps one copy of a kernel two groups made alike, and renames a different kernel
that took the same name. Groups are a fixed number, dealt by function size, so every machine builds the
same bytes.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import tvm
import tvm_ffi
from tvm import relax
from tvm.relax.expr import _update_type
from tvm.relax.expr_functor import PyExprMutator, mutator


# TE keeps its op tag scope in a class attribute, not per thread: two threads building TE kernels at once
# tag each other's ops (or fail with "nested op_tag is not allowed"). Passes that build them take turns.
_TE = threading.Lock()


def one_at_a_time(pass_: tvm.transform.Pass) -> tvm.transform.Pass:
    """pass_, run by one thread at a time (for passes that build TE kernels: legalization, folding)."""

    @tvm.transform.module_pass(opt_level=0, name=pass_.info.name)
    def serialized(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        with _TE:
            return pass_(mod)

    return serialized


def each(items: list, work: Callable) -> list:
    """work(item) for every item, each in its own thread, under the caller's pass context."""
    if len(items) == 1:
        return [work(items[0])]
    context = tvm.transform.PassContext.current()

    def in_context(item):
        with context:
            return work(item)

    with ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(in_context, items))


def function_groups(mod: tvm.IRModule, groups: int) -> list[tvm.IRModule]:
    """The Relax functions dealt into at most `groups` modules of about equal size, each with all of the
    module's other functions. Functions that call one another (a library function and the decoder layers
    it calls) are dealt together, largest set first, each to the lightest group; ties by name."""
    relax_funcs = {gv.name_hint: (gv, f) for gv, f in mod.functions_items() if isinstance(f, relax.Function)}
    others = {gv: f for gv, f in mod.functions_items() if not isinstance(f, relax.Function)}
    sets = sorted(_calling_sets(relax_funcs), key=min)
    dealt = deal(sets, lambda names: sum(_size(relax_funcs[n][1]) for n in names), groups)
    return [tvm.IRModule({**others, **dict(relax_funcs[n] for n in sorted(n for names in group for n in names))},
                         attrs=mod.attrs, global_infos=mod.global_infos) for group in dealt]


def deal(items: list, weight: Callable, bins: int) -> list[list]:
    """items dealt into at most `bins` non-empty lists of about equal total weight: heaviest first, each to
    the lightest list; equal weights keep the items' order, so the result is the same on every machine."""
    dealt: list[list] = [[] for _ in range(max(1, min(bins, len(items))))]
    loads = [0] * len(dealt)
    for item in sorted(items, key=lambda item: -weight(item)):  # stable: ties in the given order
        lightest = loads.index(min(loads))
        dealt[lightest].append(item)
        loads[lightest] += weight(item)
    return dealt


def _calling_sets(relax_funcs: dict) -> list[list[str]]:
    """The Relax functions' names in sets closed under calls between them (union-find)."""
    root = {name: name for name in relax_funcs}

    def find(name: str) -> str:
        while root[name] != name:
            name = root[name]
        return name

    for name, (_, func) in relax_funcs.items():
        for callee in relax_callees(func, relax_funcs):
            root[find(callee)] = find(name)
    sets: dict[str, list[str]] = {}
    for name in sorted(relax_funcs):
        sets.setdefault(find(name), []).append(name)
    return list(sets.values())


def relax_callees(func: relax.Function, names) -> set[str]:
    """The names (among `names`) of the functions func calls."""
    return {v.op.name_hint for v in binding_values(func.body)
            if isinstance(v, relax.Call) and isinstance(v.op, tvm.ir.GlobalVar) and v.op.name_hint in names}


def binding_values(expr):
    """The values bound in a normalized body, the branches of an If included: every call a body makes
    is one, so walking bindings finds them all without visiting every sub-expression."""
    if isinstance(expr, relax.If):
        yield from binding_values(expr.true_branch)
        yield from binding_values(expr.false_branch)
    if not isinstance(expr, relax.SeqExpr):
        return
    for block in expr.blocks:
        for binding in block.bindings:
            if isinstance(binding.value, (relax.If, relax.SeqExpr)):
                yield from binding_values(binding.value)
            else:
                yield binding.value


def _size(func: relax.Function) -> int:
    body = func.body
    return sum(len(block.bindings) for block in body.blocks) if isinstance(body, relax.SeqExpr) else 1


def merge(parts: list[tvm.IRModule]) -> tvm.IRModule:
    """One module of the parts' functions. A kernel (any non-Relax function) equal to one an earlier part
    holds, up to its name, is dropped; one whose name is taken by a different kernel is renamed
    `NAME_pI`; the part's Relax functions then call the kept or renamed one."""
    if len(parts) == 1:
        return parts[0]
    kept: dict[str, tuple[tvm.ir.GlobalVar, object]] = {}
    by_content: dict[int, list[tvm.ir.GlobalVar]] = {}
    relax_funcs: dict[str, tuple[tvm.ir.GlobalVar, relax.Function]] = {}
    for index, part in enumerate(parts):
        mapping: dict[str, tvm.ir.GlobalVar] = {}
        for gv, func in sorted(part.functions_items(), key=lambda item: item[0].name_hint):
            if isinstance(func, relax.Function):
                continue
            content = _nameless(func)
            digest = tvm_ffi.structural_hash(content)
            same = next((k for k in by_content.get(digest, ())
                         if tvm_ffi.structural_equal(_nameless(kept[k.name_hint][1]), content)), None)
            if same is not None:
                mapping[gv.name_hint] = same
                continue
            if gv.name_hint in kept:
                gv, func = _renamed(gv, func, _fresh_name(f"{gv.name_hint}_p{index}", kept), mapping)
            kept[gv.name_hint] = (gv, func)
            by_content.setdefault(digest, []).append(gv)
        for gv, func in part.functions_items():
            if isinstance(func, relax.Function):
                if gv.name_hint in relax_funcs:
                    raise AssertionError(f"Relax function {gv.name_hint} is in two parts")
                relax_funcs[gv.name_hint] = (gv, rename_global_vars(part, func, mapping))
    functions = dict(kept.values())
    functions.update(relax_funcs.values())
    return tvm.IRModule(functions, attrs=parts[0].attrs, global_infos=parts[0].global_infos)


def _nameless(func):
    """The function without its symbol name, which AttachGlobalSymbol set from its GlobalVar's."""
    return func.without_attr("global_symbol") if func.attrs is not None and "global_symbol" in func.attrs \
        else func


def _renamed(gv: tvm.ir.GlobalVar, func, name: str, mapping: dict) -> tuple:
    new_gv = tvm.ir.GlobalVar(name)
    _update_type(new_gv, gv.ty)
    if func.attrs is not None and "global_symbol" in func.attrs:
        func = func.with_attr("global_symbol", name)
    mapping[gv.name_hint] = new_gv
    return new_gv, func


def _fresh_name(name: str, taken: dict) -> str:
    candidate, n = name, 0
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    return candidate


@mutator
class _Rename(PyExprMutator):
    def __init__(self, mod, mapping):
        super().__init__(mod)
        self.mapping = mapping

    def visit_global_var_(self, op):
        return self.mapping.get(op.name_hint, op)


def rename_global_vars(mod: tvm.IRModule, func: relax.Function,
                       mapping: dict[str, tvm.ir.GlobalVar]) -> relax.Function:
    """func with every reference to a function named in `mapping` (as a callee or an argument) made to
    the mapped GlobalVar."""
    if not mapping:
        return func
    return _Rename(mod, mapping).visit_expr(func)
