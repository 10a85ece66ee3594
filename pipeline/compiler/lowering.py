"""From a compile spec to LLVM IR: model definition, Relax pipeline, TIR lowering.

Writes, into an output folder:
- `lib0.ll`, `lib1.ll`: the model's kernels and host code as LLVM IR, dealt into KERNEL_PARTS modules
  that build in parallel (TVM cannot serialize a lowered IRModule, so the IR text is the stored form
  between lower and codegen);
- `devc.ll`: the VM executable (bytecode, constants), packed the way TVM's
  export_library packs imports;
- `metadata.json`: what the library's `_metadata` function returns.
"""
from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import tvm
from tvm import relax
from tvm.relax import vm_build

from llmc import devices, families
from llmc.compiler import (fast_math, functions, gpu, int8_matmul, layers, logit_kernels, parallel, passes,
                           prebuild, schedules)
from llmc.compiler.primfuncs import all_noalias
from llmc.quant import scheme as quant_scheme
from llmc.families.base import hidden_size


def model_class(model_type: str):
    arch = families.nn_module(model_type)

    class Model(arch.CausalLM, functions.LibraryFunctions):
        pass

    Model.__name__ = f"{model_type}_model"
    return Model, arch


def activation_dtype(s, device) -> str:
    """The device's activation dtype (float32 on CPUs: x86 has no float16 arithmetic, so float16
    activations only add conversions and error), else the model dtype, as MLC's GPU libraries."""
    return device.ACTIVATION_DTYPE or s.model_dtype


def build_model(spec: dict, target, device):
    cfg = spec["model_config"]
    s = quant_scheme(spec["quantization"])
    cls, arch = model_class(spec["model_type"])
    act = activation_dtype(s, device)
    model = cls(cfg, s, act)
    model.kv_spec = arch.kv_cache_spec(cfg)
    model.dtype = act
    model.target = target
    model.hidden_size = hidden_size(cfg)
    model.prefill_chunk_size = spec["prefill_chunk_size"]
    model.active_vocab_size = spec["active_vocab_size"] or cfg["vocab_size"]
    dot = int8_matmul.dot_instruction(target) if spec["opt"].get("int8_activations") else None
    if dot:
        layers.use_int8_activations(model, dot)
    return model


def check_params(exported: list[tuple[str, object]], expected: list) -> None:
    """The library's parameters must be exactly the tensors convert_weight writes."""
    got = [[name, [int(d) for d in p.shape], p.dtype] for name, p in exported]
    want = [[n, list(shape), dtype] for n, shape, dtype in expected]
    if got != want:
        diff = next((g, w) for g, w in zip(got + [None] * len(want), want + [None] * len(got)) if g != w)
        raise AssertionError(f"model parameters disagree with the weight spec: {diff[0]} vs {diff[1]}")


def memory_usage(mod: tvm.IRModule) -> dict[str, int]:
    """Bytes of statically planned storage per exported Relax function (after StaticPlanBlockMemory),
    with the most that the private functions it calls (decoder layers: compiler.layer_functions) plan
    while they run."""
    funcs = {gv.name_hint: func for gv, func in mod.functions_items() if isinstance(func, relax.Function)}
    own = {name: sum(_planned_bytes(v) for v in parallel.binding_values(func.body)) for name, func in funcs.items()}
    calls = {name: parallel.relax_callees(func, funcs) for name, func in funcs.items()}

    def peak(name: str) -> int:
        return own[name] + max((peak(callee) for callee in calls[name]), default=0)

    return {name: peak(name) for name, func in funcs.items()
            if func.attrs is not None and "global_symbol" in func.attrs}


def _planned_bytes(value) -> int:
    """The size of a constant-size alloc_storage call, else 0."""
    if not (isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op)
            and value.op.name == "relax.memory.alloc_storage"):
        return 0
    shape = value.args[0]
    if not (isinstance(shape, relax.ShapeExpr) and all(isinstance(v, tvm.tirx.IntImm) for v in shape.values)):
        return 0
    size = 1
    for v in shape.values:
        size *= int(v)
    return size


def metadata(spec: dict, model, usage: dict[str, int]) -> dict:
    return {
        "model_type": spec["model_type"],
        "quantization": spec["quantization"],
        "context_window_size": spec["context_window_size"],
        "sliding_window_size": spec["sliding_window_size"],
        "attention_sink_size": spec["attention_sink_size"],
        "prefill_chunk_size": spec["prefill_chunk_size"],
        "tensor_parallel_shards": spec["tensor_parallel_shards"],
        "pipeline_parallel_stages": 1,
        "kv_state_kind": "kv_cache",
        "max_batch_size": spec["max_batch_size"],
        "active_vocab_size": model.active_vocab_size,
        "model_task": "chat",
        "params": [{"name": n, "shape": list(shape), "dtype": dtype, "preprocs": []}
                   for n, shape, dtype in spec["params"]],
        "kv_cache": model.kv_spec.metadata(),
        "memory_usage": usage,
    }


def _metadata_function(text: str) -> relax.Function:
    body = relax.SeqExpr([], tvm.ir.StringImm(text))
    return relax.Function([], body, ret_ty=relax.ObjectType()).with_attr("global_symbol", "_metadata")


def schedule_pass(target, device, opt: dict):
    if device.SCHEDULES == "gpu":
        return gpu.schedule_pass(target)
    if not opt.get("cpu_schedules", True):
        return None
    return tvm.transform.Sequential([fast_math.fast_transcendentals, schedules.schedule_cpu])


def lower(spec: dict, target_dict: dict, out_dir: Path) -> dict:
    target = tvm.target.Target(target_dict)
    device = devices.for_target(target_dict)
    model = build_model(spec, target, device)
    on_gpu = device.SCHEDULES == "gpu"
    schedule = schedule_pass(target, device, spec["opt"])
    # GPU libraries and system libraries build their kernels as one module (see _emit): no prebuild
    exported = model.spec()
    prebuilding = None if on_gpu or spec["system_lib"] else prebuild.Prebuild(target, schedule, set(exported))
    model.on_kernels_traced = prebuilding and prebuilding.start
    mod, params = model.export_tvm(spec=exported)
    check_params(params, spec["params"])
    for name, kernel in logit_kernels.KERNELS.items():
        mod[tvm.ir.GlobalVar(name)] = logit_kernels.for_gpu(kernel) if on_gpu else kernel
    bounds = {"seq_len": spec["prefill_chunk_size"], "batch_size": spec["max_batch_size"]}
    groups = parallel.function_groups(mod, 1 if on_gpu else RELAX_PARTS)
    scheduled = parallel.each(groups, lambda group: passes.run(
        group, passes.optimize(bounds, schedule), target))
    if on_gpu:
        gpu.check_kernels(scheduled[0])
    planned = parallel.each(scheduled, lambda group: passes.run(group, passes.vm_lowering()[:5], target))
    usage = {name: size for group in planned for name, size in memory_usage(group).items()}
    meta = metadata(spec, model, dict(sorted(usage.items())))
    planned[0] = planned[0].clone()
    planned[0][tvm.ir.GlobalVar("_metadata")] = _metadata_function(json.dumps(meta))
    lowered = parallel.merge(parallel.each(planned, lambda group: passes.run(
        group, passes.vm_lowering()[5:], target)))
    _emit(lowered, target, spec, out_dir, on_gpu, prebuilding)
    device.post_lower(out_dir, spec)
    (out_dir / "metadata.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


# A CPU library's Relax pipeline runs on this many groups of the model's functions in parallel threads
# (compiler.parallel); GPU libraries stay one group (their schedules were only ever checked that way).
RELAX_PARTS = 2

# A CPU library's kernels are built as this many LLVM modules, in parallel threads (TVM releases the GIL in
# its C++), and codegen compiles their IR in parallel too. A constant, not the core count, so every machine
# builds the same bytes.
KERNEL_PARTS = 2


def _emit(mod: tvm.IRModule, target, spec: dict, out_dir: Path, on_gpu: bool,
          prebuilding: prebuild.Prebuild | None) -> None:
    builder = relax.ExecBuilder()
    leftover = vm_build._vmcodegen(builder, mod, "bytecode")
    tir_mod = vm_build._filter_tir(leftover)
    if spec["system_lib"]:
        tir_mod = tir_mod.with_attr("system_lib_prefix", spec["system_lib_prefix"])
    # TVM's TIR common-subexpression elimination breaks SSA in its own tree-attention kernel for some
    # GPU shapes (head_dim 32, 3 query heads per KV head: "cse_v14 has been used before definition");
    # nvcc, Metal's and WGSL's compilers eliminate common subexpressions themselves.
    config = {"tirx.disable_cse_tir": True} if on_gpu else {}
    opt_level = tvm.transform.PassContext.current().opt_level

    def build(numbered: tuple[int, object]):
        i, part = numbered
        if isinstance(part, tvm.IRModule):
            with tvm.transform.PassContext(opt_level=opt_level, config=config):
                part = tvm.tirx.build(part, target=target)
        (out_dir / f"lib{i}.ll").write_text(without_debug_info(part.inspect_source("ll")))
        return part

    tir_mod, built = prebuilding.take(tir_mod) if prebuilding is not None else (tir_mod, [])
    if not on_gpu:
        tir_mod = all_noalias(tir_mod)
    # GPU kernels come with their host launchers, and a system library registers one module: one part.
    parts = _split(tir_mod, 1 if on_gpu or spec["system_lib"] else KERNEL_PARTS)
    parts += built
    with ThreadPoolExecutor(len(parts)) as pool:
        kernels = list(pool.map(build, enumerate(parts)))
    executable = vm_build._ffi_api.VMLink(builder, target, kernels[0], kernels[1:], {})
    pack = tvm.get_global_func("runtime.ModulePackImportsToLLVM")
    host_target = kernels[0].get_function("_get_target_string")()
    packed = pack(executable, spec["system_lib"], host_target, spec["system_lib_prefix"])
    packed.write_to_file(str(out_dir / "devc.ll"))


# TVM's LLVM code generator always describes each kernel's variables in DWARF; no debugger reads them in a
# model library, yet they cost codegen a third of its time (.debug_loc outweighed .text), and the machine
# code is the same without them.
_DEBUG_RECORD = re.compile(r"^ *#dbg_\w+\(.*\n", re.MULTILINE)
_DEBUG_LOCATION = re.compile(r",? !dbg !\d+")
_DEBUG_UNIT = re.compile(r"^!llvm\.dbg\.cu = .*\n", re.MULTILINE)


def without_debug_info(ll: str) -> str:
    """LLVM IR text without its debug records, locations and compile unit (the metadata they alone
    referenced is dropped when LLVM reads it)."""
    for pattern in (_DEBUG_RECORD, _DEBUG_UNIT, _DEBUG_LOCATION):
        ll = pattern.sub("", ll)
    return ll


def _split(tir_mod: tvm.IRModule, parts: int) -> list[tvm.IRModule]:
    """The PrimFuncs dealt into `parts` modules (no empty one) of about equal LLVM work: largest first,
    each to the lightest part, a kernel's size being the length of its TVMScript (attention kernels are
    the biggest; by name alone one part took 1.6x the other's time)."""
    funcs = sorted(tir_mod.functions_items(), key=lambda item: item[0].name_hint)
    sizes = {gv.name_hint: len(func.script()) if parts > 1 else 0 for gv, func in funcs}
    dealt = parallel.deal(funcs, lambda item: sizes[item[0].name_hint], parts)
    return [tvm.IRModule(dict(sorted(part, key=lambda item: item[0].name_hint)), attrs=tir_mod.attrs)
            for part in dealt]
