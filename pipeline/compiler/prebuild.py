"""A CPU library's KV cache kernels, built in a thread while the rest of the model is traced.

Tracing the model (TVMScript parsing included) is Python on one core for about 2 s of a 10 s compile,
and the attention kernels of the KV cache are a third of the LLVM work that follows it. So the model
traces its KV cache first (functions.LibraryFunctions.spec) and hands the module so far, which then
holds only those kernels, to `start`. A thread readies them as the Relax pipeline would (op patterns, the
target's schedules, global symbols) and builds them; TVM's C++ releases the GIL, so tracing goes on.

`take` keeps the result only if each kernel it built is, structurally, the one the pipeline made: one
that differs in anything (a pass that changed it, a renamed kernel) would leave two versions of a symbol,
so then nothing is kept and every kernel is built with the rest, as without a prebuild.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import tvm
import tvm_ffi
from tvm import relax, tirx

from llmc.compiler import passes
from llmc.compiler.primfuncs import all_noalias


class KVCacheKernels:
    def __init__(self, target, schedule):
        self.target = target
        # names as the traced module's finalize gives them (a kernel's global symbol), then the pipeline
        self.readying = [relax.transform.NormalizeGlobalVar(), relax.transform.AnnotateTIROpPattern()] + ([schedule] if schedule is not None else []) + [
            relax.transform.AttachGlobalSymbol()]
        self._pool = ThreadPoolExecutor(1)
        self._built: Future | None = None

    def start(self, traced: tvm.IRModule) -> None:
        """Build the kernels of the module traced so far (called once, by the KV cache's creation)."""
        if self._built is not None:
            return
        kernels = tvm.IRModule({gv: f for gv, f in traced.functions_items() if isinstance(f, tirx.PrimFunc)})
        context = tvm.transform.PassContext.current()
        self._built = self._pool.submit(self._build, kernels, context)

    def _build(self, kernels: tvm.IRModule, context) -> tuple[tvm.IRModule, object]:
        with context:
            readied = passes.run(kernels, self.readying, self.target)
            return readied, tvm.tirx.build(all_noalias(readied), target=self.target)

    def take(self, tir_mod: tvm.IRModule) -> tuple[tvm.IRModule, object | None]:
        """(tir_mod without the prebuilt kernels, their built module), or (tir_mod, None) when they are not
        exactly the kernels of tir_mod."""
        self._pool.shutdown()
        if self._built is None:
            return tir_mod, None
        readied, built = self._built.result()
        final = {gv.name_hint: f for gv, f in tir_mod.functions_items()}
        names = [gv.name_hint for gv, _ in readied.functions_items()]
        if tir_mod.attrs or not all(n in final and tvm_ffi.structural_equal(final[n], readied[n]) for n in names):
            return tir_mod, None
        rest = tvm.IRModule({gv: f for gv, f in tir_mod.functions_items() if gv.name_hint not in names},
                            attrs=tir_mod.attrs)
        return rest, built
