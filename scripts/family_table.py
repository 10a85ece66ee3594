#!/usr/bin/env python3
"""The family x source x quantization table: each tiny family model (transformers' own classes, random
weights), from its Hugging Face folder and from a GGUF written as llama.cpp writes one (F16), converted
by llmc at q0f32, q4f16_1, q4f32_1 and q3f16_1, compiled for this CPU, and run next to transformers
holding the weights llmc's folder holds (dequantized): max relative logit error over prefill + 8 greedy
decode steps, and how many of the 9 greedy tokens agree. Markdown on stdout, JSON in bench-results/.

    python scripts/family_table.py [--families llama,gemma2]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
from compiled import build, hf_greedy, library, rel_error, run_teacher_forced  # noqa: E402
from test_compile_quantized import SCHEMES, dequantized_state, hf_with, read_params, unfuse  # noqa: E402

PROMPT = [5, 17, 42, 99, 3, 250, 7, 1, 88, 123, 200, 31, 64, 9, 150, 270, 11, 12, 300, 45, 6, 77, 101, 2]
QUANTS = ("q0f32", "q4f16_1", "q4f32_1", "q3f16_1")
# (row, family folder, tiny spec, GGUF architecture or None); GGUF rows need what GGUF can say (gemma:
# query_pre_attn_scalar = head_dim; gemma3: llama.cpp's fixed pattern of 6)
ROWS = [
    ("llama", "llama", dict(model_type="llama", kv_heads=2), "llama"),
    ("mistral", "llama", dict(model_type="mistral", kv_heads=2, sliding_window=16), "llama"),
    ("qwen2", "qwen", dict(model_type="qwen2", tied=True, heads=6, kv_heads=2, hidden=96), "qwen2"),
    ("qwen3", "qwen", dict(model_type="qwen3", head_dim=32), "qwen3"),
    ("gemma2", "gemma", dict(model_type="gemma2", window=8, pre_attn_scalar=None), "gemma2"),
    ("gemma3", "gemma", dict(model_type="gemma3", window=8, layers=6, pattern=6, pre_attn_scalar=None), "gemma3"),
    ("phi3", "phi3", dict(longrope=True, partial=0.75), "phi3-no-longrope"),
    ("gpt2", "gpt2", dict(), "gpt2"),
    ("gpt_neox", "gpt_neox", dict(), None),
]


def reference_state(folder: Path, quant: str, cfg: dict) -> dict:
    bits, group, layout = SCHEMES[quant] if quant in SCHEMES else (None, None, None)
    if bits is None:
        state = {n: w for k, v in read_params(folder).items() for n, w in unfuse(k, v.astype(np.float32), cfg).items()}
    else:
        state = dequantized_state(folder, bits, group, layout, cfg)
    if "embed_out.weight" in state:
        state["lm_head.weight"] = state.pop("embed_out.weight")
    for name in [n for n in state if n.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")) and "n_embd" in cfg]:
        state[name] = np.ascontiguousarray(state[name].T)
    return state


def cell(model_dir: Path, source: Path, quant: str, work: Path, store) -> dict:
    folder = build(source, quant, work / f"{source.stem}-{quant}", store, prefill_chunk_size=8)
    cfg = json.loads((folder / "mlc-chat-config.json").read_text())["model_config"]
    greedy, ref = hf_greedy(hf_with(model_dir, reference_state(folder, quant, cfg)), PROMPT, 8)
    ours = run_teacher_forced(library(folder), PROMPT, greedy)
    agree = sum(int(np.argmax(a)) == int(np.argmax(b)) for a, b in zip(ours, ref))
    return {"max_rel_error": max(rel_error(a, b) for a, b in zip(ours, ref)), "tokens_agree": agree,
            "tokens": len(ref)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default=",".join(r[0] for r in ROWS))
    args = ap.parse_args()
    from llmc import families
    from llmc.families.tiny import write_gguf
    from llmc.store import Store

    wanted = args.families.split(",")
    results, started = [], time.time()
    with tempfile.TemporaryDirectory(prefix="llmc-family-table-") as tmp:
        work = Path(tmp)
        store = Store(work / "store").ensure()
        for row, folder_name, spec, arch in ROWS:
            if row not in wanted:
                continue
            tiny = families.tiny_module(getattr(families, folder_name))
            if arch == "phi3-no-longrope":  # llama.cpp's LongRoPE factors are not read yet: a plain phi3 file
                arch, gguf_spec = "phi3", dict(kv_heads=2)
            else:
                gguf_spec = spec
            sources = [("HF", tiny.make(work / f"{row}-hf", **spec), None)]
            if arch:
                gguf_model = tiny.make(work / f"{row}-gguf-model", **gguf_spec)
                (work / f"{row}-gguf").mkdir()
                write_gguf(gguf_model, work / f"{row}-gguf" / f"{row}.gguf", arch, "F16")
                sources.append(("GGUF F16", gguf_model, work / f"{row}-gguf" / f"{row}.gguf"))
            for label, model_dir, gguf_path in sources:
                for quant in QUANTS:
                    r = cell(model_dir, gguf_path or model_dir, quant, work, store)
                    results.append({"family": row, "source": label, "quant": quant, **r})
                    print(f"{row:9} {label:8} {quant:8} {r['max_rel_error']:.1e} {r['tokens_agree']}/{r['tokens']}",
                          file=sys.stderr, flush=True)
    print("| family | source | " + " | ".join(QUANTS) + " |")
    print("|---|---|" + "---|" * len(QUANTS))
    for key in dict.fromkeys((r["family"], r["source"]) for r in results):
        cells = {r["quant"]: r for r in results if (r["family"], r["source"]) == key}
        print(f"| {key[0]} | {key[1]} | " + " | ".join(
            f"{cells[q]['max_rel_error']:.1e}, {cells[q]['tokens_agree']}/{cells[q]['tokens']}" for q in QUANTS) + " |")
    out = ROOT / "bench-results" / "family_table.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"seconds": round(time.time() - started), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
