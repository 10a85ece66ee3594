#!/usr/bin/env python3
"""llmc serve against llama.cpp's llama-server: aggregate generated tokens/s and p50/p99 time to first
token at concurrency 1, 4, 8 and 16, on SmolLM2-135M-Instruct (llmc q4f16_1 at O3; llama.cpp Q4_0 of the
same GGUF, llama-server built from the sdist the other benchmarks use), same threads, same prompts. Each
server runs as its own process; each level sends the same 16 streaming chat requests (greedy, 64 tokens).
JSON and PNG in bench-results/.

    python scripts/bench_serve.py [--levels 1,4,8,16] [--requests 16]
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import ROOT, THREADS  # noqa: E402

QUESTIONS = ["What is the capital of France?", "Write a haiku about the sea.", "Explain rain to a child.",
             "Name three prime numbers.", "What does a lighthouse keeper do?", "Describe a cat in one sentence.",
             "Why is the sky blue?", "Give me a tip for learning Python."]
GENERATE = 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


def one_request(base: str, question: str) -> tuple[float, int, float]:
    """(time to first token, tokens, seconds) of one streaming chat request."""
    import httpx

    body = {"messages": [{"role": "user", "content": question}], "max_tokens": GENERATE, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first, tokens, usage = None, 0, None
    with httpx.Client(timeout=600) as c, c.stream("POST", f"{base}/v1/chat/completions", json=body) as r:
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices") or []:
                if (choice.get("delta") or {}).get("content") is not None:
                    first = first or time.perf_counter()
                    tokens += 1
    return (first or time.perf_counter()) - t0, usage or tokens, time.perf_counter() - t0


def level(base: str, concurrency: int, requests: int) -> dict:
    work: queue.Queue = queue.Queue()
    for i in range(requests):
        work.put(QUESTIONS[i % len(QUESTIONS)])
    results, lock = [], threading.Lock()

    def worker():
        while True:
            try:
                q = work.get_nowait()
            except queue.Empty:
                return
            r = one_request(base, q)
            with lock:
                results.append(r)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ttfts = sorted(r[0] for r in results)
    pick = lambda q: ttfts[min(len(ttfts) - 1, int(q * len(ttfts)))]  # noqa: E731
    return {"concurrency": concurrency, "tokens_per_s": sum(r[1] for r in results) / wall,
            "ttft_p50_ms": pick(0.5) * 1000, "ttft_p99_ms": pick(0.99) * 1000, "requests": len(results)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="1,4,8,16")
    ap.add_argument("--requests", type=int, default=16)
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    import llamacpp
    from compiled import build
    from fetch_smollm2 import smollm2_gguf
    from llmc.store import Store

    gguf = smollm2_gguf()
    server_bin = llamacpp.binaries(("llama-server", "llama-quantize"))["llama-server"]
    q4 = llamacpp.quantized(gguf, "Q4_0")
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = build(gguf, "q4f16_1", Path(tmp) / "smollm2", Store(Path(tmp) / "store"), conv="auto", opt="O3",
                       context_window_size=2048)
        width = max(levels)
        servers = {
            "llmc serve": lambda port: [sys.executable, "-m", "llmc", "serve", str(folder), "--model-lib",
                                        str(folder / "lib.so"), "--port", str(port),
                                        "--max-num-sequence", str(width), "--store", str(Path(tmp) / "store")],
            # --no-repack: as llama-bench's --repack 0 (the repacked and AMX paths crash on some x86 CPUs)
            "llama-server": lambda port: [str(server_bin), "-m", str(q4), "-t", str(THREADS), "-np", str(width),
                                          "--no-repack",
                                          "-c", str(width * 1024), "--host", "127.0.0.1", "--port", str(port)],
        }
        for name, command in servers.items():
            port = free_port()
            env = {**os.environ, "TVM_NUM_THREADS": str(THREADS)}
            proc = subprocess.Popen(command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            try:
                base = f"http://127.0.0.1:{port}"
                wait_ready(f"{base}/health", proc)
                one_request(base, "warm up")
                runs[name] = [level(base, c, args.requests) for c in levels]
                for row in runs[name]:
                    print(name, row, file=sys.stderr, flush=True)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    print(f"SmolLM2-135M-Instruct, {THREADS} threads, {args.requests} streaming chat requests of {GENERATE} "
          "tokens per level")
    print("| server | concurrency | tokens/s | TTFT p50 ms | TTFT p99 ms |")
    print("|---|---|---|---|---|")
    for name, rows in runs.items():
        for r in rows:
            print(f"| {name} | {r['concurrency']} | {r['tokens_per_s']:.1f} | {r['ttft_p50_ms']:.0f} | "
                  f"{r['ttft_p99_ms']:.0f} |")
    ours, theirs = runs["llmc serve"], runs["llama-server"]
    if 8 in levels:
        i, one = levels.index(8), ours[0]["tokens_per_s"] if levels[0] == 1 else float("nan")
        print(f"concurrency 8: llmc / llama-server {ours[i]['tokens_per_s'] / theirs[i]['tokens_per_s']:.2f}x, "
              f"llmc 8 / llmc 1 {ours[i]['tokens_per_s'] / one:.2f}x")
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "bench_serve.json").write_text(json.dumps({"threads": THREADS, "runs": runs}, indent=1))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
        for name, rows in runs.items():
            a.plot(levels, [r["tokens_per_s"] for r in rows], marker="o", label=name)
            b.plot(levels, [r["ttft_p50_ms"] for r in rows], marker="o", label=name)
        a.set(xlabel="concurrent clients", ylabel="generated tokens/s")
        b.set(xlabel="concurrent clients", ylabel="TTFT p50 (ms)")
        a.legend()
        fig.tight_layout()
        fig.savefig(out / "bench_serve.png")
    except ImportError:
        print("(matplotlib not installed: no plot)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
