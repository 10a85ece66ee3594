#!/usr/bin/env python3
"""Mistral-7B's shape (random F16 GGUF, 14.5 GB): llama-quantize Q4_0 next to llmc's convert under MLC's rule.

Each round: llama-quantize Q4_0; llmc into an empty store; llmc into an empty store whose hash cache
already knows the source (so the source-hash read is left out); the source hash alone. Prints seconds,
peak RSS (mapped pages included) and how much of the page cache is in use after each step. Only the GGUF
stays on disk while measuring, so its pages fit in this machine's page cache as a user's would.
Needs ~35 GB of free disk under --work for a few minutes.

    python scripts/bench_convert_7b.py [--rounds 2] [--work DIR] [--model SmolLM2-1.7B] [--gguf FILE]
                                         [--safetensors DIR]
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
import bench_scale  # noqa: E402
from benchlib import THREADS  # noqa: E402


def page_cache_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Cached:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def main() -> int:
    import llamacpp

    from llmc.families.tiny import write_gguf

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", default="Mistral-7B", choices=list(bench_scale.models()))
    parser.add_argument("--work", type=Path, default=None, help="folder for the model (default: a temp folder)")
    parser.add_argument("--safetensors", type=Path, default=None, help="the same model as float16 safetensors "
                        "(a folder): each round also converts it, into an empty store")
    parser.add_argument("--gguf", type=Path, default=None, help="an F16 GGUF of --model's shape already on disk "
                        "(used as it is; nothing is written)")
    args = parser.parse_args()
    env = {**os.environ, "TVM_NUM_THREADS": str(THREADS)}
    with tempfile.TemporaryDirectory(prefix="llmc-convert-7b-", dir=args.work) as tmp:
        work = Path(tmp)
        cfg, arch = bench_scale.models()[args.model]
        gguf = args.gguf or work / "model.f16.gguf"
        if args.gguf is None:
            start = time.perf_counter()
            bench_scale.write_hf(cfg, work / "hf")
            write_gguf(work / "hf", gguf, arch, "F16", keep=False)
            shutil.rmtree(work / "hf")
            print(f"wrote {gguf.stat().st_size / 1e9:.1f} GB in {time.perf_counter() - start:.0f} s", flush=True)
        quantize = str(llamacpp.binaries()["llama-quantize"])

        def convert(store: Path, source: Path = gguf) -> tuple[float, float]:
            out = work / "out"
            took = bench_scale.measured([sys.executable, "-m", "llmc", "convert_weight", str(source), "--quantization",
                                         "q4f16_1", "--quantization-mode", "mlc", "-o", str(out), "--store", str(store)],
                                        env)
            shutil.rmtree(out)
            return took

        for r in range(args.rounds):
            print(f"round {r + 1} (page cache {page_cache_gib():.1f} GiB)")
            seconds, rss = bench_scale.measured([quantize, str(gguf), str(work / "q4.gguf"), "Q4_0", str(THREADS)])
            (work / "q4.gguf").unlink()
            print(f"  llama-quantize Q4_0: {seconds:.1f} s, {rss:.2f} GiB (page cache {page_cache_gib():.1f} GiB)")
            ours, rss = convert(work / "store")
            print(f"  llmc q4f16_1 mlc, empty store: {ours:.1f} s, {rss:.2f} GiB, {seconds / ours:.2f}x Q4_0 "
                  f"(page cache {page_cache_gib():.1f} GiB)")
            hashed = work / "store-hashed"
            hashed.mkdir()
            shutil.copy(work / "store" / "hashcache.msgpack", hashed / "hashcache.msgpack")
            shutil.rmtree(work / "store")
            known, rss = convert(hashed)
            shutil.rmtree(hashed)
            print(f"  llmc, the source's hash already known: {known:.1f} s, {rss:.2f} GiB")
            if args.safetensors is not None:
                ours, rss = convert(work / "store-st", args.safetensors)
                shutil.rmtree(work / "store-st")
                print(f"  llmc from safetensors, empty store: {ours:.1f} s, {rss:.2f} GiB, {seconds / ours:.2f}x Q4_0")
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", f"from llmc.store import digest; digest.of_file({str(gguf)!r})"],
                           check=True)
            print(f"  the source hash alone: {time.perf_counter() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
