#!/usr/bin/env python3
"""Engine speed on the real SmolLM2-135M-Instruct, next to transformers on the same GGUF, in one run.

For q0f32, q4f32_1 and q4f16_1: prefill and decode tokens/s through MLCEngine (chat completion,
greedy), and the same prompt through transformers (float32, its own KV cache, same threads).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import THREADS, time_transformers  # noqa: E402

GENERATE = 64
QUESTION = "Write a short story about a lighthouse keeper who befriends a seagull."


def engine_speed(folder: Path) -> tuple[float, float, str]:
    from llmc.runtime import MLCEngine

    engine = MLCEngine(folder, model_lib=folder / "lib.so")
    before = dict(engine.stats)
    r = engine.chat.completions.create(messages=[{"role": "user", "content": QUESTION}], temperature=0,
                                       max_tokens=GENERATE)
    d = {k: engine.stats[k] - before[k] for k in before}
    return (d["prefill_tokens"] / d["prefill_seconds"], d["decode_tokens"] / d["decode_seconds"],
            r.choices[0].message.content)


def main() -> None:
    from compiled import build
    from fetch_smollm2 import smollm2_gguf
    from llmc.store import Store

    gguf = smollm2_gguf()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store")
        for quant in ("q0f32", "q4f32_1", "q4f16_1"):
            folder = build(gguf, quant, Path(tmp) / quant, store, conv="auto")
            prefill, decode, _ = engine_speed(folder)
            rows.append((f"llmc {quant}", prefill, decode))
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).eval()
        ids = tok.apply_chat_template([{"role": "user", "content": QUESTION}], add_generation_prompt=True,
                                      tokenize=True)
        ids = ids if isinstance(ids, list) else ids["input_ids"]
        prefill, decode = time_transformers(model, ids, GENERATE)
        rows.append(("transformers fp32", prefill, decode))
    print(f"SmolLM2-135M-Instruct, {THREADS} threads, generate {GENERATE} tokens")
    print(f"{'':<20} {'prefill tok/s':>14} {'decode tok/s':>13}")
    for name, prefill, decode in rows:
        print(f"{name:<20} {prefill:>14.1f} {decode:>13.1f}")
    base = rows[-1]
    for name, prefill, decode in rows[:-1]:
        print(f"{name} / transformers: prefill {prefill / base[1]:.2f}x, decode {decode / base[2]:.2f}x")


if __name__ == "__main__":
    main()
