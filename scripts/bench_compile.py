#!/usr/bin/env python3
"""Compile time and speed of the CPU library at the SmolLM2-135M shape, next to transformers.

Random weights with SmolLM2-135M-Instruct's config (no download needed). Prints cold and warm
(cached) compile times, then prefill and decode tokens/s of the compiled library for q0f32 and
q4f32_1, and of transformers (float32, same threads) on the same shape, in the same run.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import THREADS, time_library, time_transformers  # noqa: E402

PROMPT, GENERATE = 128, 64


def smollm2_shape(path: Path) -> Path:
    from tiny_models import make_llama

    return make_llama(path, hidden=576, inter=1536, heads=9, kv_heads=3, layers=30, vocab=49152, ctx=2048,
                      tied=True, rope_theta=100000.0)


def main() -> None:
    from compiled import build
    from llmc.commands.compile import compile_model
    from llmc.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = smollm2_shape(tmp / "model")
        tokens = list(range(100, 100 + PROMPT))
        rows = []
        for quant in ("q0f32", "q4f32_1"):
            folder = build(model, quant, tmp / quant, Store(tmp / f"store-{quant}"))
            fresh = Store(tmp / f"fresh-{quant}")  # an empty store: every compile stage runs
            t0 = time.perf_counter()
            compile_model(str(folder), folder / "cold.so", fresh)
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            compile_model(str(folder), folder / "warm.so", fresh)
            warm = time.perf_counter() - t0
            prefill, decode = time_library(folder, tokens, GENERATE)
            rows.append((f"llmc {quant}", cold, warm, prefill, decode))
        from transformers import AutoModelForCausalLM

        prefill, decode = time_transformers(AutoModelForCausalLM.from_pretrained(model).eval(), tokens, GENERATE)
        rows.append(("transformers fp32", float("nan"), float("nan"), prefill, decode))
    print(f"SmolLM2-135M shape, {THREADS} threads, prompt {PROMPT}, generate {GENERATE}")
    print(f"{'':<20} {'compile s':>9} {'cached s':>9} {'prefill tok/s':>14} {'decode tok/s':>13}")
    for name, cold, warm, prefill, decode in rows:
        print(f"{name:<20} {cold:>9.1f} {warm:>9.2f} {prefill:>14.1f} {decode:>13.1f}")
    base = rows[-1]
    for name, _, _, prefill, decode in rows[:-1]:
        print(f"{name} / transformers: prefill {prefill / base[3]:.2f}x, decode {decode / base[4]:.2f}x")


if __name__ == "__main__":
    main()
