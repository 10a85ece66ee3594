#!/usr/bin/env python3
"""Compile time and CPU speed of each family at its smallest real shape (random weights, no download).

For each preset (Qwen2.5-0.5B, Qwen3-0.6B, Gemma-3-1B, Phi-3.5-mini shapes): random float16 weights
written as a Hugging Face folder, converted to q4f16_1 (--quantization-mode mlc: the codes do not change
the speed), compiled for this CPU at O2 and O3 from an empty store each (cold compile seconds), then
prefill of 128 tokens and decode of 64 through the library. Table on stdout, JSON in bench-results/.

    python scripts/bench_families.py [--presets qwen2_5_0_5b,gemma3_1b]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import ROOT, THREADS, time_library  # noqa: E402

PRESETS = ("qwen2_5_0_5b", "qwen3_0_6b", "gemma3_1b", "phi3_5_mini")
PROMPT, GENERATE = 128, 64


def random_model(preset: str, path: Path) -> Path:
    """config.json, one safetensors file of float16 N(0, 0.02) weights at the preset's shapes, a tokenizer."""
    import numpy as np
    from safetensors.numpy import save_file

    from llmc import families
    from llmc.families.tiny import make_tokenizer

    hf = dict(families.PRESETS[preset])
    model_type = families.detect(hf)
    shapes = families.architecture(model_type).hf_shapes(families.model_config(hf, model_type))
    rng = np.random.default_rng(0)
    path.mkdir(parents=True)
    save_file({name: (rng.standard_normal(shape, np.float32) * 0.02).astype(np.float16)
               for name, shape in shapes.items()}, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(hf))
    make_tokenizer(path, hf["vocab_size"])
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default=",".join(PRESETS))
    args = ap.parse_args()
    from llmc.commands.compile import compile_model
    from llmc.commands.convert_weight import convert_weight
    from llmc.commands.gen_config import generate_config
    from llmc.store import Store

    rows = []
    tokens = list(range(100, 100 + PROMPT))
    with tempfile.TemporaryDirectory(prefix="llmc-bench-families-") as tmp:
        tmp = Path(tmp)
        for preset in args.presets.split(","):
            model = random_model(preset, tmp / preset)
            folder = tmp / f"{preset}-q4f16_1"
            store = Store(tmp / "store").ensure()
            t0 = time.perf_counter()
            convert_weight(str(model), "q4f16_1", folder, store, mode="mlc")
            generate_config(str(model), "q4f16_1", "chatml", folder, store, context_window_size=2048,
                            prefill_chunk_size=PROMPT)
            convert = time.perf_counter() - t0
            for opt in ("O2", "O3"):
                t0 = time.perf_counter()
                compile_model(str(folder), folder / f"lib-{opt}.so", Store(tmp / f"store-{preset}-{opt}").ensure(),
                              opt=opt)
                compile_s = time.perf_counter() - t0
                prefill, decode = time_library(folder, tokens, GENERATE, lib_name=f"lib-{opt}.so")
                rows.append({"preset": preset, "opt": opt, "convert_s": round(convert, 1),
                             "compile_s": round(compile_s, 1), "prefill_tok_s": round(prefill, 1),
                             "decode_tok_s": round(decode, 2)})
                print(rows[-1], file=sys.stderr, flush=True)
            for p in model.iterdir():
                p.unlink()
    print(f"q4f16_1, {THREADS} threads, prompt {PROMPT}, generate {GENERATE}, cold compiles")
    print("| shape | opt | convert s | compile s | prefill tok/s | decode tok/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['preset']} | {r['opt']} | {r['convert_s']} | {r['compile_s']} | {r['prefill_tok_s']} | "
              f"{r['decode_tok_s']} |")
    out = ROOT / "bench-results" / "bench_families.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"threads": THREADS, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
