"""The Relax pipeline on groups of functions: the merge keeps one copy of a kernel two groups made alike
and renames a different kernel that took the same name, and every call goes to the right one."""
from __future__ import annotations

import tvm
import tvm_ffi
from tvm import relax
from tvm.script import tirx as T

from llmc import tvm_libs
from llmc.compiler import lowering, parallel


def _kernel(scale: float, symbol: str) -> tvm.tirx.PrimFunc:
    @T.prim_func
    def kernel(a: T.Buffer((4,), "float32"), b: T.Buffer((4,), "float32")):
        for i in range(4):
            b[i] = a[i] * T.float32(scale)

    return kernel.with_attr("global_symbol", symbol)


def _module(kernels: dict[str, tvm.tirx.PrimFunc], functions: dict[str, list[str]]) -> tvm.IRModule:
    """`kernels` and, for each entry of `functions`, a Relax function calling the named kernels in turn."""
    bb = relax.BlockBuilder()
    gvs = {name: bb.add_func(kernel, name) for name, kernel in kernels.items()}
    for function, calls in functions.items():
        x = relax.Var("x", relax.TensorType((4,), "float32"))
        with bb.function(function, [x]):
            out = x
            for name in calls:
                out = bb.emit(relax.call_tir(gvs[name], [out], relax.TensorType((4,), "float32")))
            bb.emit_func_output(out)
    return bb.get()


def _callees(func: relax.Function) -> list[str]:
    return [b.value.args[0].name_hint for b in func.body.blocks[0].bindings]


def test_merge_drops_equal_kernels_renames_clashing_ones_and_points_calls_at_them():
    first = _module({"double": _kernel(2.0, "double"), "mul": _kernel(3.0, "mul")}, {"prefill": ["double", "mul"]})
    # "twice" equals first's "double" under another name; "mul" is a different kernel under a taken name
    second = _module({"twice": _kernel(2.0, "twice"), "mul": _kernel(5.0, "mul")}, {"decode": ["twice", "mul"]})
    merged = parallel.merge([first, second])
    names = sorted(gv.name_hint for gv, _ in merged.functions_items())
    assert names == ["decode", "double", "mul", "mul_p1", "prefill"]
    assert _callees(merged["prefill"]) == ["double", "mul"]
    assert _callees(merged["decode"]) == ["double", "mul_p1"]
    assert merged["mul_p1"].attrs["global_symbol"] == "mul_p1"
    assert tvm_ffi.structural_equal(merged["mul_p1"].without_attr("global_symbol"),
                                    _kernel(5.0, "x").without_attr("global_symbol"))
    assert tvm_ffi.structural_equal(merged["prefill"], first["prefill"])


def test_function_groups_deal_by_size_and_keep_every_kernel():
    mod = _module({"double": _kernel(2.0, "double")},
                  {name: ["double"] * calls for name, calls in (("big", 6), ("mid", 3), ("small", 2), ("tiny", 1))})
    groups = parallel.function_groups(mod, 2)
    relax_names = [sorted(gv.name_hint for gv, f in g.functions_items() if isinstance(f, relax.Function))
                   for g in groups]
    assert relax_names == [["big"], ["mid", "small", "tiny"]]
    assert all("double" in [gv.name_hint for gv, _ in g.functions_items()] for g in groups)


def test_function_groups_keep_a_function_with_the_functions_it_calls():
    bb = relax.BlockBuilder()
    double = bb.add_func(_kernel(2.0, "double"), "double")
    ty = relax.TensorType((4,), "float32")

    def function(name: str, callee, calls: int, private: bool = False):
        x = relax.Var("x", ty)
        with bb.function(name, [x], private=private):
            out = x
            for _ in range(calls):
                out = bb.emit(relax.call_tir(double, [out], ty) if callee is None else relax.Call(callee, [out]))
            return bb.emit_func_output(out)

    layer = function("layer", None, 4, private=True)
    for name, calls in (("prefill", 2), ("verify", 1)):
        function(name, layer, calls)
    function("decode", None, 6)
    groups = parallel.function_groups(bb.get(), 2)
    relax_names = [sorted(gv.name_hint for gv, f in g.functions_items() if isinstance(f, relax.Function))
                   for g in groups]
    assert relax_names == [["layer", "prefill", "verify"], ["decode"]]


def test_debug_info_is_dropped_from_llvm_ir_and_what_is_left_builds(tmp_path):
    ll = '''define i32 @f(i32 %x) !dbg !5 {
  %y = add i32 %x, 1, !dbg !7
    #dbg_value(i32 %y, !8, !DIExpression(), !7)
  ret i32 %y, !dbg !7
}

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!3}
!0 = distinct !DICompileUnit(language: DW_LANG_C, file: !1, producer: "TVM", isOptimized: false, runtimeVersion: 0, emissionKind: FullDebug)
!1 = !DIFile(filename: "IRModule.CodeGenLLVM", directory: ".")
!3 = !{i32 2, !"Debug Info Version", i32 3}
!5 = distinct !DISubprogram(name: "f", scope: !1, file: !1, type: !6, spFlags: DISPFlagDefinition, unit: !0)
!6 = !DISubroutineType(types: !{})
!7 = !DILocation(line: 0, scope: !5)
!8 = !DILocalVariable(name: "y", scope: !5, file: !1, type: !9)
!9 = !DIBasicType(name: "int32", size: 32, encoding: DW_ATE_signed)
'''
    stripped = lowering.without_debug_info(ll)
    assert "dbg" not in stripped and "%y = add i32 %x, 1\n" in stripped and "define i32 @f(i32 %x) {" in stripped
    (tmp_path / "f.ll").write_text(stripped)
    tvm_libs.write_object(tmp_path / "f.ll", tmp_path / "f.o")
    assert (tmp_path / "f.o").stat().st_size > 0


def test_function_names_listed_once_are_listed_again_when_a_function_is_registered(monkeypatch):
    import tvm_ffi.registry as registry

    listed_each_time = registry.list_global_func_names
    monkeypatch.setattr(registry, "list_global_func_names", listed_each_time)  # undone after the test
    tvm_libs.list_function_names_once()
    assert registry.list_global_func_names is not listed_each_time
    assert sorted(registry.list_global_func_names()) == sorted(listed_each_time())
    tvm_ffi.register_global_func("llmc_test.listed_once", lambda: 1, override=True)
    try:
        assert "llmc_test.listed_once" in registry.list_global_func_names()
    finally:
        tvm_ffi.remove_global_func("llmc_test.listed_once")
    assert "llmc_test.listed_once" not in registry.list_global_func_names()


def test_prebuilt_kernels_are_kept_only_when_the_pipeline_made_the_same_ones():
    from llmc.compiler import passes, prebuild

    target = tvm.target.Target("llvm")
    ready = lambda: prebuild.Prebuild(target, None, {"embed"})  # noqa: E731
    first = tvm.IRModule({"double": _kernel(2.0, "double"), "embed": _kernel(4.0, "embed")})
    final = passes.run(first, ready().readying, target)
    second = tvm.IRModule({**dict(first.functions_items()), "triple": _kernel(3.0, "triple")})

    kept = ready()
    kept.start(first)
    kept.start(second)  # a batch of what is new since: "triple"
    rest, built = kept.take(tvm.IRModule({**dict(final.functions_items()), "triple": _kernel(3.0, "triple")}))
    assert len(built) == 1 and "double" in built[0].inspect_source("ll")  # "triple" is not as readied
    assert sorted(gv.name_hint for gv, _ in rest.functions_items()) == ["embed", "triple"]  # an exported name

    changed = ready()
    changed.start(first)
    mod = tvm.IRModule({"double": final["double"].with_attr("tirx.noalias", False)})  # a pass touched it
    assert changed.take(mod)[1] == [] and changed.take(mod)[0]["double"].same_as(mod["double"])

    assert ready().take(mod)[1] == []


def test_every_kernel_is_generated_noalias_whatever_module_it_shares():
    from llmc.compiler.primfuncs import all_noalias

    mod = all_noalias(tvm.IRModule({"a": _kernel(2.0, "a"), "z": _kernel(3.0, "z").with_attr("tirx.noalias", True)}))
    assert all(bool(f.attrs["tirx.noalias"]) for _, f in mod.functions_items())
