#!/usr/bin/env python3
"""Compile time and CPU speed of each family at its smallest real shape (random weights, no download).

For each preset (Qwen2.5-0.5B, Qwen3-0.6B, Gemma-3-1B, Phi-3.5-mini shapes): random float16 weights
written as a Hugging Face folder, converted to q4f16_1 (--quantization-mode mlc: the codes do not change
the speed), compiled for this CPU at O1 (exact) and O2 (int8 activations) from an empty store each (cold compile seconds), then
prefill of 128 tokens and decode of 64 through the library. Next to it, llama.cpp (llama-bench, built
from the sdist, see llamacpp.py) on the same weights written as a GGUF and quantized to Q4_0 by
llama-quantize. Table on stdout, JSON in bench-results/.

    python scripts/bench_families.py [--presets qwen2_5_0_5b,gemma3_1b] [--no-llamacpp]
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
GGUF_ARCH = {"qwen2": "qwen2", "qwen3": "qwen3", "gemma2": "gemma2", "gemma3_text": "gemma3", "phi3": "phi3"}
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


def llamacpp_row(preset: str, model: Path, tmp: Path) -> dict:
    """llama-bench on the same weights: written as llama.cpp writes the family's GGUF, then Q4_0."""
    import llamacpp

    from llmc.families.tiny import write_gguf

    arch = GGUF_ARCH[json.loads((model / "config.json").read_text())["model_type"]]
    f16 = tmp / f"{preset}.f16.gguf"
    write_gguf(model, f16, arch, "F16", keep=False)
    q4 = llamacpp.quantized(f16, "Q4_0")
    f16.unlink()
    speeds = llamacpp.bench(q4, THREADS, [PROMPT], GENERATE, 3)
    q4.unlink()
    return {"preset": preset, "opt": "llama.cpp Q4_0", "convert_s": None, "compile_s": None,
            "prefill_tok_s": round(sorted(speeds[f"pp{PROMPT}"])[1], 1),
            "decode_tok_s": round(sorted(speeds[f"tg{GENERATE}"])[1], 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--no-llamacpp", action="store_true")
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
            for opt in ("O1", "O2"):
                t0 = time.perf_counter()
                compile_model(str(folder), folder / f"lib-{opt}.so", Store(tmp / f"store-{preset}-{opt}").ensure(),
                              opt=opt)
                compile_s = time.perf_counter() - t0
                prefill, decode = time_library(folder, tokens, GENERATE, lib_name=f"lib-{opt}.so")
                rows.append({"preset": preset, "opt": opt, "convert_s": round(convert, 1),
                             "compile_s": round(compile_s, 1), "prefill_tok_s": round(prefill, 1),
                             "decode_tok_s": round(decode, 2)})
                print(rows[-1], file=sys.stderr, flush=True)
            if not args.no_llamacpp:
                rows.append(llamacpp_row(preset, model, tmp))
                print(rows[-1], file=sys.stderr, flush=True)
            for p in model.iterdir():
                p.unlink()
    print(f"q4f16_1, {THREADS} threads, prompt {PROMPT}, generate {GENERATE}, cold compiles")
    print("| shape | opt | convert s | compile s | prefill tok/s | decode tok/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = [r["preset"], r["opt"], r["convert_s"], r["compile_s"], r["prefill_tok_s"], r["decode_tok_s"]]
        print("| " + " | ".join("—" if c is None else str(c) for c in cells) + " |")
    for r in rows:
        peer = next((x for x in rows if x["preset"] == r["preset"] and x["opt"].startswith("llama.cpp")), None)
        if peer and r is not peer:
            print(f"{r['preset']} {r['opt']} / llama.cpp Q4_0: prefill {r['prefill_tok_s'] / peer['prefill_tok_s']:.2f}x, "
                  f"decode {r['decode_tok_s'] / peer['decode_tok_s']:.2f}x")
    out = ROOT / "bench-results" / "bench_families.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"threads": THREADS, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
