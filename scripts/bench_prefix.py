#!/usr/bin/env python3
"""Time to first token of turn 2 of a 1,000-token conversation, with and without prefix reuse.

The real SmolLM2-135M-Instruct (q4f16_1, this CPU, O2). Turn 1: a user message of about 1,000 tokens
and a 32-token reply; turn 2: the history and a short question, streamed. The warm engine forks turn 1's
cached sequence and prefills only the new tokens; the cold one (reuse off) prefills everything. Both
engines in the same run, best of --reps.

    python scripts/bench_prefix.py [--reps 3]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import THREADS  # noqa: E402

STORY = ("The lighthouse stood at the end of a narrow spit of rock, and for forty years the same family had "
         "kept its lamp burning through storms and calm nights alike. ")


def ttft(engine, messages) -> tuple[float, int]:
    before = engine.stats["prefill_tokens"]
    t0 = time.perf_counter()
    stream = engine.chat.completions.create(messages=messages, max_tokens=8, temperature=0, stream=True)
    next(stream)
    seconds = time.perf_counter() - t0
    for _ in stream:
        pass
    return seconds, engine.stats["prefill_tokens"] - before


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    from compiled import build
    from fetch_smollm2 import smollm2_gguf
    from llmc.runtime import MLCEngine
    from llmc.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        folder = build(smollm2_gguf(), "q4f16_1", Path(tmp) / "q4f16_1", Store(Path(tmp) / "store"), conv="auto",
                       context_window_size=2048, prefill_chunk_size=256)
        rows = {}
        for name, reuse in (("prefix reuse", True), ("no reuse", False)):
            best = None
            for rep in range(args.reps):
                engine = MLCEngine(folder, model_lib=folder / "lib.so")
                engine.scheduler.reuse = reuse
                turn1 = [{"role": "user", "content": STORY * 34 + f"Summarize this ({rep})."}]
                reply = engine.chat.completions.create(messages=turn1, max_tokens=32, temperature=0)
                history = turn1 + [{"role": "assistant", "content": reply.choices[0].message.content},
                                   {"role": "user", "content": "What did the keeper write in his book?"}]
                seconds, prefilled = ttft(engine, history)
                if best is None or seconds < best[0]:
                    best = (seconds, prefilled, reply.usage.prompt_tokens)
            rows[name] = best
    print(f"SmolLM2-135M-Instruct q4f16_1, {THREADS} threads: turn 2 of a {rows['no reuse'][2]}-token conversation")
    for name, (seconds, prefilled, _) in rows.items():
        print(f"{name:<14} time to first token {seconds * 1000:7.1f} ms, {prefilled} tokens prefilled")
    print(f"speedup: {rows['no reuse'][0] / rows['prefix reuse'][0]:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
