#!/usr/bin/env python3
"""Convert a random ~1B-parameter Llama (TinyLlama-1.1B's shape) and report throughput and memory.

Prints, for q0f16 and q4f16_1: wall time, source GB/s, peak RSS of the converting process;
then the time of a second, fully cached run. The model is made once with transformers
(float16 safetensors) under bench-results/.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "bench-results" / "random-llama-1b"


def make_model() -> None:
    if (MODEL / "config.json").exists():
        return
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=2048, intermediate_size=5632, num_attention_heads=32, num_key_value_heads=4,
                      num_hidden_layers=22, vocab_size=32000, max_position_embeddings=2048)
    torch.manual_seed(0)
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    model = model.to_empty(device="cpu").to(torch.float16)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    model.save_pretrained(MODEL, max_shard_size="2GB")


PROBE = ("import resource, sys; from llmc.cli import run; code = run(sys.argv[1:]); "
         "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(code)")


def run(quant: str, out: Path, store: Path) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of one convert_weight in a fresh process."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", PROBE, "convert_weight", str(MODEL), "--quantization", quant,
                        "-o", str(out), "--store", str(store)], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    lines = r.stderr.strip().splitlines()
    print(f"  {lines[-2]}")
    return seconds, int(lines[-1]) / 1024


def main() -> None:
    make_model()
    source_bytes = sum(f.stat().st_size for f in MODEL.glob("*.safetensors"))
    params = json.loads((MODEL / "config.json").read_text())
    print(f"model: {MODEL} ({source_bytes / 1e9:.2f} GB float16, hidden {params['hidden_size']}, "
          f"{params['num_hidden_layers']} layers)")
    print(f"{'quantization':<12} {'cold s':>8} {'GB/s':>6} {'peak RSS MiB':>13} {'cached s':>9}")
    with tempfile.TemporaryDirectory(dir=ROOT / "bench-results") as tmp:
        for quant in ("q0f16", "q4f16_1"):
            store = Path(tmp) / f"store-{quant}"
            cold, rss = run(quant, Path(tmp) / f"out-{quant}", store)
            warm, _ = run(quant, Path(tmp) / f"out2-{quant}", store)
            print(f"{quant:<12} {cold:>8.1f} {source_bytes / cold / 1e9:>6.2f} {rss:>13.0f} {warm:>9.2f}")


if __name__ == "__main__":
    main()
