#!/usr/bin/env python3
"""Mixture-of-experts decode and prefill on the CPU, next to a dense model of the same active size and to llama.cpp.

Random float16 weights at a Qwen3-MoE-style shape (default: 64 experts, top-8, about 3.1B parameters of which
0.5B are active per token) and at the dense qwen3 shape whose MLP equals the routed experts' (intermediate =
top_k x moe_intermediate): each converted to q4f16_1 (--quantization-mode mlc; the codes do not change the
speed), compiled for this CPU at the default opt (O2), then prefill of 128 tokens and decode of 64 through the
library. llama.cpp (llama-bench, see llamacpp.py) runs the same MoE weights written as llama.cpp writes a
qwen3moe GGUF, quantized to Q4_0. Also the convert's peak RSS (its own process). JSON in bench-results/.

    python scripts/bench_moe.py [--layers 24] [--experts 64] [--no-llamacpp]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import ROOT, THREADS, time_library  # noqa: E402

PROMPT, GENERATE = 128, 64


def configs(layers: int, experts: int, top_k: int, moe_inter: int) -> dict[str, dict]:
    common = {"hidden_size": 1024, "num_attention_heads": 16, "num_key_value_heads": 4, "head_dim": 64,
              "num_hidden_layers": layers, "vocab_size": 32000, "max_position_embeddings": 4096,
              "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": False, "hidden_act": "silu",
              "attention_bias": False, "bos_token_id": 1, "eos_token_id": 2}
    return {
        "moe": {**common, "model_type": "qwen3_moe", "intermediate_size": top_k * moe_inter,
                "moe_intermediate_size": moe_inter, "num_experts": experts, "num_experts_per_tok": top_k,
                "norm_topk_prob": True, "decoder_sparse_step": 1, "mlp_only_layers": []},
        "dense": {**common, "model_type": "qwen3", "intermediate_size": top_k * moe_inter},
    }


def random_model(hf: dict, path: Path) -> tuple[Path, int]:
    """config.json, float16 N(0, 0.02) weights in shards of at most 1 GiB, a tokenizer; returns the parameter count."""
    import numpy as np
    from safetensors.numpy import save_file

    from llmc import families
    from llmc.families.tiny import make_tokenizer

    model_type = families.detect(hf)
    shapes = families.architecture(model_type).hf_shapes(families.model_config(hf, model_type))
    rng = np.random.default_rng(0)
    path.mkdir(parents=True)
    shard, size, index, count = {}, 0, {}, 0
    for name, shape in shapes.items():
        shard[name] = (rng.standard_normal(shape, np.float32) * 0.02).astype(np.float16)
        size += shard[name].nbytes
        count += int(np.prod(shape))
        if size > 1 << 30:
            save_file(shard, str(path / f"model-{len(index):05d}.safetensors"))
            index[len(index)] = list(shard)
            shard, size = {}, 0
    if shard:
        save_file(shard, str(path / f"model-{len(index):05d}.safetensors"))
        index[len(index)] = list(shard)
    weight_map = {name: f"model-{i:05d}.safetensors" for i, names in index.items() for name in names}
    (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (path / "config.json").write_text(json.dumps(hf))
    make_tokenizer(path, hf["vocab_size"])
    return path, count


# VmHWM, not ru_maxrss: Linux carries a forking parent's peak into the child's ru_maxrss across exec.
CONVERT = """
import re, sys
from pathlib import Path
from llmc.commands.convert_weight import convert_weight
from llmc.store import Store
convert_weight(sys.argv[1], "q4f16_1", Path(sys.argv[2]), Store(Path(sys.argv[3])).ensure(), mode="mlc")
print(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
"""


def build(model: Path, folder: Path, tmp: Path) -> dict:
    from llmc.commands.compile import compile_model
    from llmc.commands.gen_config import generate_config
    from llmc.store import Store

    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CONVERT, str(model), str(folder), str(tmp / "store")],
                          check=True, capture_output=True, text=True)
    convert_s = time.perf_counter() - t0
    generate_config(str(model), "q4f16_1", "chatml", folder, Store(tmp / "store").ensure(),
                    context_window_size=4096, prefill_chunk_size=PROMPT)
    t0 = time.perf_counter()
    compile_model(str(folder), folder / "lib.so", Store(tmp / f"store-{folder.name}").ensure(), opt="O2")
    return {"convert_s": round(convert_s, 1), "convert_peak_rss_gib": round(int(done.stdout.split()[-1]) / 2**20, 2),
            "compile_s": round(time.perf_counter() - t0, 1)}


def llamacpp_row(model: Path, tmp: Path) -> dict:
    import llamacpp

    from llmc.families.tiny import write_gguf

    f16 = tmp / "moe.f16.gguf"
    write_gguf(model, f16, "qwen3moe", "F16", keep=False)
    q4 = llamacpp.quantized(f16, "Q4_0")
    f16.unlink()
    speeds = llamacpp.bench(q4, THREADS, [PROMPT], GENERATE, 3)
    q4.unlink()
    return {"model": "moe", "engine": "llama.cpp Q4_0", "prefill_tok_s": round(sorted(speeds[f"pp{PROMPT}"])[1], 1),
            "decode_tok_s": round(sorted(speeds[f"tg{GENERATE}"])[1], 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--experts", type=int, default=64)
    ap.add_argument("--top-k", type=int, default=8)
    ap.add_argument("--moe-inter", type=int, default=640)
    ap.add_argument("--no-llamacpp", action="store_true")
    args = ap.parse_args()
    rows = []
    tokens = list(range(100, 100 + PROMPT))
    with tempfile.TemporaryDirectory(prefix="llmc-bench-moe-") as tmp:
        tmp = Path(tmp)
        for kind, hf in configs(args.layers, args.experts, args.top_k, args.moe_inter).items():
            model, params = random_model(hf, tmp / kind)
            row = {"model": kind, "engine": "llmc q4f16_1 O2", "params_b": round(params / 1e9, 2),
                   **build(model, tmp / f"{kind}-q4f16_1", tmp)}
            prefill, decode = time_library(tmp / f"{kind}-q4f16_1", tokens, GENERATE)
            rows.append({**row, "prefill_tok_s": round(prefill, 1), "decode_tok_s": round(decode, 2)})
            print(rows[-1], file=sys.stderr, flush=True)
            if kind == "moe" and not args.no_llamacpp:
                rows.append(llamacpp_row(model, tmp))
                print(rows[-1], file=sys.stderr, flush=True)
            for p in model.iterdir():
                p.unlink()
    print(f"{THREADS} threads, prompt {PROMPT}, generate {GENERATE}; MoE: {args.experts} experts, top-{args.top_k}")
    print("| model | engine | params (B) | convert s | peak RSS GiB | compile s | prefill tok/s | decode tok/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = [r["model"], r["engine"], r.get("params_b"), r.get("convert_s"), r.get("convert_peak_rss_gib"),
                 r.get("compile_s"), r["prefill_tok_s"], r["decode_tok_s"]]
        print("| " + " | ".join("—" if c is None else str(c) for c in cells) + " |")
    moe = next(r for r in rows if r["model"] == "moe" and r["engine"].startswith("llmc"))
    dense = next(r for r in rows if r["model"] == "dense")
    print(f"MoE / dense active-size decode: {moe['decode_tok_s'] / dense['decode_tok_s']:.2f}x")
    peer = next((r for r in rows if r["engine"].startswith("llama.cpp")), None)
    if peer:
        print(f"MoE / llama.cpp Q4_0: decode {moe['decode_tok_s'] / peer['decode_tok_s']:.2f}x, "
              f"prefill {moe['prefill_tok_s'] / peer['prefill_tok_s']:.2f}x")
    out = ROOT / "bench-results" / "bench_moe.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"threads": THREADS, "args": vars(args), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
