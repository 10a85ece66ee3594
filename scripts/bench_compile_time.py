#!/usr/bin/env python3
"""Cold compile time of SmolLM2-135M-Instruct q4f16_1 for this CPU: `llmc compile` into an empty store.

With --baseline REV, each round compiles with this checkout and with REV (a git worktree under the work
folder) back to back, alternating which goes first, so a slow minute of a shared machine hits both
sides of a pair alike; the ratio is the median of the rounds' paired ratios. Also checks that two
compiles of this checkout give the same library bytes.

    python scripts/bench_compile_time.py [--rounds 5] [--baseline 30b6d5b]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import ROOT, THREADS, median  # noqa: E402
from fetch_smollm2 import smollm2_gguf  # noqa: E402


def checkout(rev: str, work: Path) -> dict:
    """An environment whose `python -m llmc` runs REV's code: its worktree's pipeline/ first on PYTHONPATH
    as `llmc`, with store/ and runtime/ linked inside it as llmc.store and llmc.runtime."""
    tree = work / f"tree-{rev}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tree), rev], check=True)
    for sub in ("store", "runtime"):
        (tree / "pipeline" / sub).symlink_to(tree / sub)
    # bytecode written first, as scripts/setup.sh does for this checkout
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "pipeline"), str(tree / "store"),
                    str(tree / "runtime")], check=True, capture_output=True)
    shim = work / f"path-{rev}"
    shim.mkdir()
    (shim / "llmc").symlink_to(tree / "pipeline")
    return {**os.environ, "PYTHONPATH": str(shim)}


def cold_compile(model: Path, out: Path, store: Path, env: dict) -> float:
    shutil.rmtree(store, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "llmc", "compile", str(model / "mlc-chat-config.json"), "--device", "cpu",
                    "-o", str(out), "--store", str(store)], check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", help="a git revision to pair each compile with")
    args = parser.parse_args()
    env = {**os.environ, "TVM_NUM_THREADS": str(THREADS)}
    with tempfile.TemporaryDirectory(prefix="llmc-compile-time-") as tmp:
        work = Path(tmp)
        model, store = work / "model", work / "store-weights"
        gguf = str(smollm2_gguf())
        for cmd in (["convert_weight", gguf, "--quantization", "q4f16_1"],
                    ["gen_config", gguf, "--quantization", "q4f16_1", "--conv-template", "auto"]):
            subprocess.run([sys.executable, "-m", "llmc", *cmd, "-o", str(model), "--store", str(store)],
                           check=True, env=env, capture_output=True)
        sides = {"this checkout": env}
        try:
            if args.baseline:
                sides[args.baseline] = {**checkout(args.baseline, work), "TVM_NUM_THREADS": str(THREADS)}
            times: dict[str, list[float]] = {name: [] for name in sides}
            for r in range(args.rounds):
                order = list(sides) if r % 2 == 0 else list(reversed(sides))
                for name in order:
                    side = list(sides).index(name)
                    times[name].append(cold_compile(model, work / f"lib-{side}-{r}.so", work / "store", sides[name]))
                print("round", r + 1, {n: round(t[-1], 1) for n, t in times.items()}, file=sys.stderr, flush=True)
            ours = [(work / f"lib-0-{r}.so").read_bytes() for r in range(args.rounds)]
            same = len(set(ours)) == 1
        finally:
            if args.baseline:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(work / f"tree-{args.baseline}")], check=False)
    print(f"cold compile, SmolLM2-135M q4f16_1, {THREADS} threads, {args.rounds} rounds")
    for name, t in times.items():
        print(f"  {name}: median {median(t):.1f} s  (runs: {', '.join(f'{x:.1f}' for x in t)})")
    if args.baseline:
        ratios = [b / a for a, b in zip(times["this checkout"], times[args.baseline])]
        print(f"  {args.baseline} / this checkout, median of paired ratios: {median(ratios):.2f}x")
    print(f"  library bytes the same across this checkout's compiles: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
