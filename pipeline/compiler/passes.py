"""The Relax pipeline from an exported model to VM-ready code: a flat list of named passes."""
from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax import transform

from llmc.compiler import layer_functions
from llmc.compiler.determinism import canonicalize_shape_funcs
from llmc.compiler.legalize import fold_constant, legalize_ops
from llmc.compiler.parallel import one_at_a_time


def attach_variable_bounds(bounds: dict[str, int]):
    """Upper bounds of the symbolic sizes (seq_len <= prefill chunk, batch_size <= max batch), so memory
    planning can allocate every intermediate once, statically."""

    @tvm.transform.module_pass(opt_level=0, name="AttachVariableBounds")
    def attach(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        mod = mod.clone()
        for gv, func in mod.functions_items():
            if isinstance(func, relax.Function):
                mod[gv] = func.with_attr("tir_var_upper_bound", bounds).with_attr(
                    "tir_non_negative_var", list(bounds))
        return mod

    return attach


def optimize(bounds: dict[str, int], schedule) -> list:
    """Graph-level passes, then the target's TIR schedules (a pass, or None): the part that decides speed."""
    passes = [
        attach_variable_bounds(bounds),
        # A reshape stays a Relax op, which the VM runs as a view (what RewriteDataflowReshape would turn
        # its kernel back into): legalizing SmolLM2's 1,811 reshapes into TE kernels took 4.8 s of lower.
        one_at_a_time(legalize_ops(skip_ops=["relax.reshape"])),
        transform.AnnotateTIROpPattern(),
        one_at_a_time(fold_constant()),
        transform.FuseOps(),
        transform.FuseTIR(),
        transform.DeadCodeElimination(),
    ]
    if schedule is not None:
        passes.append(schedule)
    return passes


def vm_lowering() -> list:
    """TVM's standard lowering to VM code, with shape lowering made deterministic."""
    return [
        transform.RewriteDataflowReshape(),
        transform.ToNonDataflow(),
        transform.RemovePurityChecking(),
        transform.CallTIRRewrite(),
        transform.StaticPlanBlockMemory(),
        transform.LowerAllocTensor(),
        transform.KillAfterLastUse(),
        transform.LowerRuntimeBuiltin(),
        transform.ComputePrimValue(),
        transform.VMShapeLower(),
        layer_functions.drop_argument_checks,
        canonicalize_shape_funcs,
        transform.AttachGlobalSymbol(),
    ]


def run(mod: tvm.IRModule, passes: list, target) -> tvm.IRModule:
    with target:
        for p in passes:
            mod = p(mod)
    return mod
