"""GPU targets: dlight's rules, minus the paths that crash TVM.

dlight's `gpu.Matmul` tries tensor-core (CUDA sm_70+) and simdgroup (Metal) tensorization before its
tiled SIMT schedule. On this TVM both die inside `sch.tensorize` with a segfault, not an exception,
for shapes as common as SmolLM2's (hidden 576) or hidden 128 / intermediate 320. `SimtMatmul` keeps
dlight's SIMT schedule with the device's own tile sizes and never reaches tensorization.
"""
from __future__ import annotations

import tvm
import tvm.s_tir.dlight as dl

# A GPU target kind for which dlight's Matmul has no special path (no tensor cores, no simdgroups, no
# Adreno outer-reduction variant): given to it so that only its tiled SIMT schedule runs.
_PLAIN_GPU = tvm.target.Target({"kind": "webgpu"})


class SimtMatmul(dl.gpu.Matmul):
    """dlight's tiled matmul (shared-memory tiles, thread-local accumulators) without tensorization."""

    def __init__(self, target: tvm.target.Target):
        self.config = dl.gpu.Matmul().get_configs(target)

    def get_configs(self, target: tvm.target.Target) -> dl.gpu.Matmul.Config:
        return self.config

    def apply(self, func, target, tunable):
        if not self.is_target_available(target):
            return None
        return super().apply(func, _PLAIN_GPU, tunable)


def schedule_pass(target: tvm.target.Target):
    # The order is dlight's own: the first rule that matches a function schedules it.
    rules = [SimtMatmul(target), dl.gpu.GEMV(), dl.gpu.LowBatchGEMV(), dl.gpu.Reduction(),
             dl.gpu.GeneralReduction(), dl.gpu.Fallback()]
    return dl.ApplyDefaultSchedule(*rules)


# A thread walking more than this many iterations of one loop is a schedule bug, not a design.
SERIAL_LIMIT = 1 << 16


class UnboundLoop(Exception):
    """A GPU kernel with a loop that no thread index splits (TVM's "did you forget to bind?")."""


def _is_split(extent) -> bool:
    """A symbolic extent that is a tile count (divided) or a length read at run time (a chunk of a page
    table, an indptr difference) is split already; a bare seq_len or vocab_size is not."""
    found = []

    def visit(e):
        if isinstance(e, (tvm.tirx.FloorDiv, tvm.tirx.Div, tvm.ir.expr.TensorLoad)):
            found.append(e)
        for attr in ("a", "b", "value", "args"):
            child = getattr(e, attr, None)
            for c in child if isinstance(child, (list, tvm.ir.Array)) else [child]:
                if isinstance(c, tvm.ir.expr.Expr):
                    visit(c)

    visit(extent)
    return bool(found)


def unsplit_loops(func: tvm.tirx.PrimFunc) -> list[str]:
    """Loops of a scheduled kernel that run on one thread over a whole dimension: outside every thread
    binding, or inside one over a constant extent of SERIAL_LIMIT or more, or a symbolic one not divided."""
    bad: list[str] = []

    def visit(node, bound: bool):
        if isinstance(node, tvm.tirx.For):
            binds = node.kind == tvm.tirx.ForKind.THREAD_BINDING
            extent = node.extent
            if not binds:
                constant = isinstance(extent, tvm.tirx.IntImm)
                if not bound and (not constant or extent.value > 1):
                    bad.append(f"loop {node.loop_var} over {extent} outside any thread binding")
                elif bound and constant and extent.value >= SERIAL_LIMIT:
                    bad.append(f"serial loop {node.loop_var} over {extent} in one thread")
                elif bound and not constant and not _is_split(extent):
                    bad.append(f"serial loop {node.loop_var} over all of {extent} in one thread")
            visit(node.body, bound or binds)
        elif isinstance(node, tvm.tirx.SeqStmt):
            for stmt in node.seq:
                visit(stmt, bound)
        else:
            for attr in ("body", "then_case", "else_case", "block", "init"):
                child = getattr(node, attr, None)
                if isinstance(child, tvm.tirx.Stmt):
                    visit(child, bound)

    visit(func.body, False)
    return bad


def check_kernels(mod: tvm.IRModule) -> None:
    """Every scheduled GPU kernel splits its loops over threads (run after the schedule pass)."""
    problems = []
    for gv, func in mod.functions_items():
        if isinstance(func, tvm.tirx.PrimFunc):
            problems += [f"{gv.name_hint}: {p}" for p in unsplit_loops(func)]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise UnboundLoop("; ".join(problems[:3]) + more)
