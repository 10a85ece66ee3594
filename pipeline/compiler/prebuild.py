"""A CPU library's kernels, built in a thread while the rest of the model is traced.

Tracing the model (TVMScript parsing included) is Python on one core for about 2 s of a 10 s compile,
and the KV cache's kernels (attention, tree attention, RoPE, page copies) are a third of the LLVM work
that follows it: about as much as that idle core can do meanwhile (a second batch, the int8 matmuls once
decode is traced, only queued behind it and made lower slower). So the model traces its KV cache first
(functions.LibraryFunctions.spec) and hands the module traced so far to `start`. A thread readies each
batch of new kernels as the Relax pipeline would (their final names, op patterns, the target's
schedules, global symbols) and builds it; TVM's C++ releases the GIL, so tracing goes on.

`take` keeps a batch only if each kernel in it is, structurally, the one the pipeline made: a kernel that
differs in anything (a pass that changed it, a renamed kernel) would leave two versions of a symbol, so
then that batch's kernels are built with the rest, as without a prebuild.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import tvm
import tvm_ffi
from tvm import relax, tirx

from llmc.compiler import passes
from llmc.compiler.primfuncs import all_noalias


class Prebuild:
    def __init__(self, target, schedule, exported: set[str]):
        self.target = target
        self.exported = exported  # a kernel named as an exported function is renamed when tracing ends
        self.readying = [relax.transform.NormalizeGlobalVar(), relax.transform.AnnotateTIROpPattern()] + (
            [schedule] if schedule is not None else []) + [relax.transform.AttachGlobalSymbol()]
        self._pool = ThreadPoolExecutor(1)  # batches one after another: tracing holds the other core
        self._started: set[str] = set()
        self._batches: list[Future] = []

    def start(self, traced: tvm.IRModule) -> None:
        """Build the kernels of the module traced so far that no earlier call started."""
        kernels = {gv: f for gv, f in traced.functions_items()
                   if isinstance(f, tirx.PrimFunc) and gv.name_hint not in self._started | self.exported}
        if kernels:
            self._started.update(gv.name_hint for gv in kernels)
            self._batches.append(self._pool.submit(self._build, tvm.IRModule(kernels),
                                                   tvm.transform.PassContext.current()))

    def _build(self, kernels: tvm.IRModule, context) -> tuple[tvm.IRModule, object]:
        with context:
            readied = passes.run(kernels, self.readying, self.target)
            return readied, tvm.tirx.build(all_noalias(readied), target=self.target)

    def take(self, tir_mod: tvm.IRModule) -> tuple[tvm.IRModule, list]:
        """(tir_mod without the kernels of the batches kept, the batches' built modules)."""
        self._pool.shutdown()
        if tir_mod.attrs:  # the batches were built as modules without attributes
            return tir_mod, []
        final = {gv.name_hint: f for gv, f in tir_mod.functions_items()}
        kept, built = set(), []
        for batch in self._batches:
            readied, module = batch.result()
            names = [gv.name_hint for gv, _ in readied.functions_items()]
            if all(n in final and tvm_ffi.structural_equal(final[n], readied[n]) for n in names):
                kept.update(names)
                built.append(module)
        rest = tvm.IRModule({gv: f for gv, f in tir_mod.functions_items() if gv.name_hint not in kept},
                            attrs=tir_mod.attrs)
        return rest, built
