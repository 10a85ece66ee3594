"""LegalizeOps, with each op's TE kernel built once per signature.

TVM's legalization builds a TE PrimFunc for every call (SmolLM2: about 1,400 calls of add, rms_norm,
astype, split and silu over 30 layers and 9 functions, 3.5 s), and the block builder then finds most of
them are duplicates. Here a call whose op, attributes and argument and result types (symbolic sizes by
name: the kernel binds them from its buffers) match one already legalized reuses that kernel. A call with
a constant argument, or whose kernel needs extra symbolic arguments, is legalized the usual way.
"""
from __future__ import annotations

import threading

import tvm
import tvm_ffi
from tvm import relax
from tvm.relax import transform

MEMOIZED = ("relax.add", "relax.subtract", "relax.multiply", "relax.divide", "relax.astype", "relax.split",
            "relax.nn.silu", "relax.nn.gelu", "relax.nn.rms_norm", "relax.nn.layer_norm", "relax.nn.softmax",
            "relax.take", "relax.concat", "relax.permute_dims", "relax.strided_slice")


def legalize_ops(skip_ops: list[str]):
    kernels: dict[tuple, list] = {}   # signature -> [(attrs, kernel GlobalVar)]
    defaults = {name: tvm.ir.Op.get(name).get_attr("FLegalize") for name in MEMOIZED}
    custom = {name: _memoized(fn, kernels) for name, fn in defaults.items() if fn is not None}
    return transform.LegalizeOps(customize_legalize_map=custom, skip_ops=skip_ops)


def _memoized(default, kernels: dict):
    def legalize(bb: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
        if any(not isinstance(a.ty, relax.TensorType) or isinstance(a, tvm.ir.expr.Constant)
               for a in call.args):
            return default(bb, call)
        signature = (call.op.name, tvm_ffi.structural_hash(call.attrs) if call.attrs is not None else 0,
                     tuple(str(a.ty) for a in call.args), str(call.ty))
        for attrs, kernel in kernels.get(signature, ()):
            if attrs is call.attrs or (attrs is not None and tvm_ffi.structural_equal(attrs, call.attrs)):
                return relax.call_tir(kernel, relax.Tuple(list(call.args)), _out_types(call.ty))
        out = default(bb, call)
        if _plain_call_tir(out, call):
            kernels.setdefault(signature, []).append((call.attrs, out.args[0]))
        return out

    return legalize


def _out_types(ty):
    return list(ty.fields) if isinstance(ty, relax.TupleType) else ty


def _plain_call_tir(out, call: relax.Call) -> bool:
    """out calls one kernel on exactly the call's arguments, with no symbolic extras."""
    return (isinstance(out, relax.Call) and isinstance(out.op, tvm.ir.Op) and out.op.name == "relax.call_tir"
            and len(out.args) == 2 and isinstance(out.args[1], relax.Tuple)
            and len(out.args[1].fields) == len(call.args)
            and all(a.same_as(b) for a, b in zip(out.args[1].fields, call.args)))


_folding = threading.local()  # the reshape override acts only inside fold_constant's pass, in its thread
_registered = False
_register_lock = threading.Lock()


def fold_constant():
    """FoldConstant, without building a TE kernel for every reshape of a non-constant tensor: it legalizes
    each reshape to see whether it folds (1,811 kernels, 2.4 s for SmolLM2), and only one of constants
    can. The override is registered once per process and acts only while this pass runs, so any other
    legalization of a reshape (in a test process that lowers twice, say) is TVM's own."""
    _register_reshape_override()

    @tvm.transform.module_pass(opt_level=0, name="FoldConstantSkippingReshapes")
    def fold(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        _folding.active = True
        try:
            return transform.FoldConstant()(mod)
        finally:
            _folding.active = False

    return fold


def _register_reshape_override() -> None:
    global _registered
    with _register_lock:  # pass lists are built in parallel threads (compiler.parallel)
        if _registered:
            return
        default = tvm.ir.Op.get("relax.reshape").get_attr("FLegalize")

        def reshape(bb, call):
            if getattr(_folding, "active", False) and not isinstance(call.args[0], tvm.ir.expr.Constant):
                return call
            return default(bb, call)

        tvm.ir.register_op_attr("relax.reshape", "FLegalize", reshape, level=11)
        _registered = True
