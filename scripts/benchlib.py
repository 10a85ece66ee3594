"""Shared helpers for the benchmark scripts: timing transformers and our engine the same way."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT, ROOT / "tests", ROOT / "scripts"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))
THREADS = int(os.environ.get("TVM_NUM_THREADS", os.cpu_count() or 2))
os.environ["TVM_NUM_THREADS"] = str(THREADS)


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2]


def _cache(out):
    return getattr(out, "cache", None) or out.past_key_values


def time_transformers(model, tokens: list[int], generate: int) -> tuple[float, float]:
    """(prefill tok/s, median decode tok/s) of a transformers model with its own KV cache."""
    import torch

    torch.set_num_threads(THREADS)
    ids = torch.tensor([tokens])
    with torch.no_grad():
        t0 = time.perf_counter()
        out = model(ids, use_cache=True)
        prefill = len(tokens) / (time.perf_counter() - t0)
        cache, steps = _cache(out), []
        nxt = out.logits[:, -1:].argmax(-1)
        for _ in range(generate):
            t0 = time.perf_counter()
            out = model(nxt, cache=cache, use_cache=True)
            steps.append(time.perf_counter() - t0)
            cache, nxt = _cache(out), out.logits[:, -1:].argmax(-1)
    return prefill, 1 / median(steps)


def time_library(folder: Path, tokens: list[int], generate: int, lib_name: str = "lib.so") -> tuple[float, float]:
    """(prefill tok/s, median decode tok/s) of a compiled library, called directly."""
    import numpy as np

    from llmc.runtime.library import ModelLibrary

    lib = ModelLibrary(folder / lib_name, folder)
    kv = lib.create_kv_cache(1, 4096)
    lib.add_sequence(kv, 0)
    t0 = time.perf_counter()
    logits = lib.prefill(kv, 0, tokens)
    prefill = len(tokens) / (time.perf_counter() - t0)
    steps = []
    for _ in range(generate):
        t0 = time.perf_counter()
        logits = lib.decode(kv, [0], [int(np.argmax(logits.reshape(-1)))])
        steps.append(time.perf_counter() - t0)
    return prefill, 1 / median(steps)


def llmc_weight_bytes(folder: Path) -> int:
    """Bytes of weights one decoded token reads from a converted model: every tensor, less the embedding
    table when a separate output matrix exists (then only one embedding row is read)."""
    import json

    cache = json.loads((folder / "ndarray-cache.json").read_text())
    cfg = json.loads((folder / "mlc-chat-config.json").read_text())["model_config"]
    records = [r for shard in cache["records"] for r in shard["records"]]
    total = sum(r["nbytes"] for r in records)
    if not cfg.get("tie_word_embeddings", False):
        total -= sum(r["nbytes"] for r in records if ".embed_tokens." in r["name"] or ".embed_in." in r["name"])
    return total


def bandwidth_probe(target: dict, megabytes: int = 1024):
    """A function that reads `megabytes` from memory with THREADS threads of a TVM-compiled loop and
    returns the bytes/s of that one read: the streaming rate a bandwidth-bound decode kernel can hope for."""
    import numpy as np
    import tvm
    from tvm.script import tirx as T

    lanes, threads = 16, THREADS
    per = megabytes * 2**20 // 4 // lanes // threads

    @T.prim_func(s_tir=True)
    def total(a: T.Buffer((threads, per, lanes), "float32"), out: T.Buffer((threads, lanes), "float32")):
        for t in T.parallel(threads):
            with T.sblock("sum"):
                acc = T.sblock_alloc_buffer((lanes,), "float32", scope="local")
                for i in T.vectorized(lanes):
                    acc[i] = T.float32(0)
                for j in T.serial(per):
                    for i in T.vectorized(lanes):
                        acc[i] = acc[i] + a[t, j, i]
                for i in T.vectorized(lanes):
                    out[t, i] = acc[i]

    func = tvm.compile(tvm.IRModule({"main": total}), target=tvm.target.Target(target))
    a = tvm.runtime.tensor(np.ones((threads, per, lanes), np.float32), tvm.cpu())
    out = tvm.runtime.tensor(np.zeros((threads, lanes), np.float32), tvm.cpu())

    def read() -> float:
        t0 = time.perf_counter()
        func(a, out)
        took = time.perf_counter() - t0
        assert float(out.numpy()[0, 0]) == per
        return threads * per * lanes * 4 / took

    return read


def read_bandwidth(target: dict, megabytes: int = 1024, reps: int = 7) -> float:
    """Bytes/s of the best of reps reads of bandwidth_probe."""
    read = bandwidth_probe(target, megabytes)
    return max(read() for _ in range(reps))
