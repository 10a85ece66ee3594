#!/usr/bin/env python3
"""Two compiled libraries of the same model and weights, side by side in one process: prefill and decode
speed as paired ratios, and whether their logits are the same bits.

Each round times both libraries back to back (alternating which goes first): a fresh sequence, a prefill
of 128 and of 32 tokens, then 64 greedy decode steps. A compiler change that should not change speed or
numerics (how lower structures a library, say) is checked by compiling the model with both revisions
(`scripts/bench_compile_time.py` shows how to run another revision) and comparing the two files.

    python scripts/bench_library_pair.py BEFORE.so AFTER.so MODEL_FOLDER [--rounds 9]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import THREADS, median  # noqa: E402

PROMPT_SHORT, PROMPT_LONG, DECODE = list(range(100, 132)), list(range(100, 228)), 64


def timings(lib, np) -> tuple[dict[str, float], list[int]]:
    """tok/s of a 128- and a 32-token prefill and of 64 decode steps; the greedy tokens."""
    rates = {}
    kv = lib.create_kv_cache(1, 1024)
    lib.add_sequence(kv, 0)
    start = time.perf_counter()
    lib.prefill(kv, 0, PROMPT_LONG)
    rates["prefill 128"] = len(PROMPT_LONG) / (time.perf_counter() - start)
    kv = lib.create_kv_cache(1, 1024)
    lib.add_sequence(kv, 0)
    start = time.perf_counter()
    token = int(np.argmax(lib.prefill(kv, 0, PROMPT_SHORT)))
    rates["prefill 32"] = len(PROMPT_SHORT) / (time.perf_counter() - start)
    tokens = []
    start = time.perf_counter()
    for _ in range(DECODE):
        token = int(np.argmax(lib.decode(kv, [0], [token])[0]))
        tokens.append(token)
    rates["decode"] = DECODE / (time.perf_counter() - start)
    return rates, tokens


def logits(lib) -> list:
    kv = lib.create_kv_cache(1, 1024)
    lib.add_sequence(kv, 0)
    out = [lib.prefill(kv, 0, PROMPT_SHORT)]
    for token in (5, 77, 1234, 9):
        out.append(lib.decode(kv, [0], [token])[0])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("model", type=Path, help="the folder with mlc-chat-config.json and the weights")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    import numpy as np

    from llmc.runtime.library import ModelLibrary

    libs = {"before": ModelLibrary(args.before, args.model), "after": ModelLibrary(args.after, args.model)}
    rates: dict[str, list[dict]] = {name: [] for name in libs}
    tokens: dict[str, list[int]] = {}
    for r in range(args.rounds):
        for name in (list(libs) if r % 2 == 0 else list(reversed(libs))):
            got, toks = timings(libs[name], np)
            rates[name].append(got)
            tokens.setdefault(name, toks)
    print(f"{args.rounds} rounds, {THREADS} threads (tok/s medians; after/before as the median of paired ratios)")
    for what in rates["before"][0]:
        before = [r[what] for r in rates["before"]]
        after = [r[what] for r in rates["after"]]
        ratio = median([a / b for a, b in zip(after, before)])
        print(f"  {what:12s} before {median(before):7.1f}  after {median(after):7.1f}  {ratio:.3f}x")
    same = all(np.array_equal(a, b) for a, b in zip(logits(libs["before"]), logits(libs["after"])))
    print(f"  greedy tokens the same: {tokens['before'] == tokens['after']}; logits the same bits: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
