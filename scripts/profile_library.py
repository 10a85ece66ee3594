#!/usr/bin/env python3
"""Where a compiled CPU library spends its time: per-kernel totals for one prefill and one decode.

    python scripts/profile_library.py FOLDER [--lib lib.so] [--prompt 128] [--steps 32]

FOLDER holds mlc-chat-config.json and the weights. Every call the Relax VM makes (TIR kernels
and runtime builtins) is timed through the VM's instrument hook; the time between calls
(the VM's own dispatch) shows up as the remainder.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402,F401  (sys.path, thread count)


def profiled(lib, call, repeat: int) -> tuple[dict[str, float], float]:
    """({kernel: seconds per repetition}, wall seconds per repetition) of call()."""
    from tvm.runtime.vm import VMInstrumentReturnKind

    totals: dict[str, float] = defaultdict(float)
    started: list[float] = []

    def instrument(func, name, before, ret, *args):
        if before:
            started.append(time.perf_counter())
        else:
            totals[name] += time.perf_counter() - started.pop()
        return VMInstrumentReturnKind.NO_OP

    call()  # warm-up, unprofiled
    lib.vm.set_instrument(instrument)
    t0 = time.perf_counter()
    for _ in range(repeat):
        call()
    wall = (time.perf_counter() - t0) / repeat
    lib.vm.set_instrument(None)
    return {k: v / repeat for k, v in totals.items()}, wall


def report(title: str, totals: dict[str, float], wall: float, top: int = 25) -> None:
    kernels = sum(totals.values())
    print(f"\n{title}: {wall * 1e3:.2f} ms per call, {kernels * 1e3:.2f} ms in {len(totals)} callees")
    for name, sec in sorted(totals.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {sec * 1e3:8.3f} ms  {100 * sec / wall:5.1f}%  {name}")
    print(f"  {(wall - kernels) * 1e3:8.3f} ms  {100 * (wall - kernels) / wall:5.1f}%  (VM dispatch, Python, copies)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--lib", default="lib.so")
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--steps", type=int, default=32)
    args = parser.parse_args()

    from llmc.runtime.library import ModelLibrary

    lib = ModelLibrary(args.folder / args.lib, args.folder)
    kv = lib.create_kv_cache(1, 4096)
    tokens = list(range(100, 100 + args.prompt))

    def prefill():
        lib.add_sequence(kv, 0)
        lib.prefill(kv, 0, tokens)
        lib.remove_sequence(kv, 0)

    totals, wall = profiled(lib, prefill, 3)
    report(f"prefill of {args.prompt} tokens", totals, wall)
    lib.add_sequence(kv, 0)
    lib.prefill(kv, 0, tokens[:16])
    totals, wall = profiled(lib, lambda: lib.decode(kv, [0], [100]), args.steps)
    report("decode of one token", totals, wall)


if __name__ == "__main__":
    main()
