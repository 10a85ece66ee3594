#!/usr/bin/env python3
"""The seed guide's models at their real shapes, random weights: convert, compile and run next to llama.cpp.

For SmolLM2-1.7B, RedPajama-INCITE-Chat-3B (gpt_neox), Llama-2-7B and Mistral-7B (sliding window 4096):
random float16 weights written as a Hugging Face folder (safetensors) and as the F16 GGUF llama.cpp's
converter would write, then, one model at a time (its files deleted before the next):
- convert to 4-bit, each in its own process with the same thread count: llmc convert_weight q4f16_1 with
  MLC's rule (--quantization-mode mlc) next to llama-quantize Q4_0 (both a scale from the group's largest
  value), and with llmc's default search (from the GGUF and from the safetensors) next to Q4_K_M (both
  search each group's scale); seconds and peak RSS (the kernel's high-water mark of the resident set,
  mapped source pages included);
- cold compile of the library (an empty store, its own process), at O2;
- prefill of 32, 128 and 512 tokens and decode (median step) through the library at O1 (exact) and O2
  (int8 activations, the default; O3 is the same), next to llama-bench on the Q4_0 file; the decode
  ceiling a bandwidth probe implies (read GB/s over the weight bytes one token reads), from the probe at
  the run's start and from one taken just before the model's speeds.
JSON and PNG in bench-results/, a Markdown table on stdout. Needs about 3x the biggest model's F16 size
of free disk (40 GB for the 7B models) and runs for about an hour with all four models.

    python scripts/bench_scale.py [--models SmolLM2-1.7B,Llama-2-7B] [--reps 2]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import ROOT, THREADS, llmc_weight_bytes, median, read_bandwidth  # noqa: E402

PROMPTS, GENERATE = (32, 128, 512), 32
OPTS = ("O1", "O2")


def models() -> dict[str, tuple[dict, str]]:
    """name -> (Hugging Face config, llama.cpp architecture)."""
    from llmc import families

    smollm2_1_7b = {**families.PRESETS["smollm2_135m"], "hidden_size": 2048, "intermediate_size": 8192,
                    "num_attention_heads": 32, "num_key_value_heads": 32, "num_hidden_layers": 24,
                    "rope_theta": 130000.0}
    return {
        "SmolLM2-1.7B": (smollm2_1_7b, "llama"),
        "RedPajama-INCITE-Chat-3B": (dict(families.PRESETS["redpajama_3b_v1"]), "gptneox"),
        "Llama-2-7B": (dict(families.PRESETS["llama2_7b"]), "llama"),
        "Mistral-7B": ({**families.PRESETS["mistral_7b"], "sliding_window": 4096}, "llama"),
    }


def random_f16(rng, shape):
    """float16 values of magnitude 2**-7..2**-5, either sign, from random bits: much faster than a normal
    draw, and speed does not depend on the values."""
    import numpy as np

    bits = rng.integers(0, 1 << 16, size=shape, dtype=np.uint16)
    return ((bits & np.uint16(0x87FF)) | np.uint16(0x2000)).view(np.float16)


def write_hf(cfg: dict, path: Path, shard_bytes: int = 2 << 30) -> None:
    """config.json, float16 safetensors shards with an index, and a byte-level tokenizer of the vocabulary."""
    import numpy as np
    from safetensors.numpy import save_file

    from llmc import families
    from llmc.families.tiny import make_tokenizer

    model_type = families.detect(cfg)
    shapes = families.architecture(model_type).hf_shapes(families.model_config(cfg, model_type))
    rng = np.random.default_rng(0)
    path.mkdir(parents=True)
    shard, size, weight_map, files = {}, 0, {}, []

    def flush():
        nonlocal shard, size
        name = f"model-{len(files) + 1:05d}.safetensors"
        save_file(shard, str(path / name))
        files.append(name)
        weight_map.update({k: name for k in shard})
        shard, size = {}, 0

    for name, shape in shapes.items():
        shard[name] = random_f16(rng, shape)
        size += shard[name].nbytes
        if size >= shard_bytes:
            flush()
    if shard:
        flush()
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (path / "config.json").write_text(json.dumps(cfg))
    make_tokenizer(path, cfg["vocab_size"])


def measured(cmd: list[str], env: dict | None = None) -> tuple[float, float]:
    """(seconds, peak RSS GiB) of a command in its own process. The peak is the kernel's high-water mark
    of the process's own memory (VmHWM, read until it exits): getrusage's ru_maxrss would also count this
    script's resident set at the fork."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _high_water_kib(proc.pid))
            time.sleep(0.02)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd[:4])} failed:\n{err.read().decode(errors='replace')[-2000:]}")
    return seconds, peak / 2**20


def _high_water_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def llmc(*args: str) -> list[str]:
    return [sys.executable, "-m", "llmc", *args]


def one_model(name: str, cfg: dict, arch: str, work: Path, reps: int, ceiling_bw: float) -> dict:
    import llamacpp

    from llmc.families.tiny import write_gguf

    row: dict = {"model": name, "parameters_b": None}
    hf, gguf = work / "hf", work / "model.f16.gguf"
    t0 = time.perf_counter()
    write_hf(cfg, hf)
    write_gguf(hf, gguf, arch, "F16", keep=False)
    print(f"{name}: wrote the random model in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    row["source_gb"] = round(gguf.stat().st_size / 1e9, 2)
    env = {**os.environ, "TVM_NUM_THREADS": str(THREADS)}
    convert = {}
    q4 = work / "model.Q4_0.gguf"
    quantize = str(llamacpp.binaries()["llama-quantize"])
    convert["llama-quantize Q4_0"] = measured([quantize, str(gguf), str(q4), "Q4_0", str(THREADS)])
    convert["llama-quantize Q4_K_M"] = measured([quantize, str(gguf), str(work / "k.gguf"), "Q4_K_M", str(THREADS)])
    (work / "k.gguf").unlink()
    # like for like: MLC's rule (max|w| / 7) next to Q4_0's, llmc's search next to the K-quants' search
    runs = (("mlc", gguf, "gguf"), ("search", gguf, "gguf"), ("search", hf, "safetensors"))
    for mode, source, kind in runs:
        out, store = work / f"out-{mode}-{kind}", work / f"store-{mode}-{kind}"
        convert[f"llmc q4f16_1 {mode} ({kind})"] = measured(llmc(
            "convert_weight", str(source), "--quantization", "q4f16_1", "--quantization-mode", mode,
            "-o", str(out), "--store", str(store)), env)
        if (mode, kind) == ("search", "gguf"):
            folder, store_kept = out, store
        else:
            shutil.rmtree(out)
            shutil.rmtree(store)
    row["convert"] = {k: {"seconds": round(s, 1), "peak_rss_gib": round(r, 2)} for k, (s, r) in convert.items()}
    print(f"{name}: convert {row['convert']}", file=sys.stderr, flush=True)
    subprocess.run(llmc("gen_config", str(gguf), "--quantization", "q4f16_1", "--conv-template", "chatml",
                        "--context-window-size", "2048", "--prefill-chunk-size", "512", "-o", str(folder),
                        "--store", str(store_kept)), check=True, capture_output=True)
    row["compile"] = {}
    for opt in OPTS:
        seconds, rss = measured(llmc("compile", str(folder), "--opt", opt, "-o", str(folder / f"lib-{opt}.so"),
                                     "--store", str(work / f"store-compile-{opt}")), env)
        row["compile"][opt] = {"seconds": round(seconds, 1), "peak_rss_gib": round(rss, 2)}
    print(f"{name}: compile {row['compile']}", file=sys.stderr, flush=True)
    nbytes = llmc_weight_bytes(folder)
    row["weight_gb_per_token"] = round(nbytes / 1e9, 3)
    row["decode_ceiling_tok_s"] = round(ceiling_bw / nbytes, 2)
    row["read_gb_s"] = round(ceiling_bw / 1e9, 1)  # this run's probe: runs on other days read differently
    # the probe again just before this model's speeds: a shared host's bandwidth drifts within an hour's run
    from llmc import devices
    at_decode = read_bandwidth(devices.resolve("cpu", None, None).target)
    row["read_gb_s_at_decode"] = round(at_decode / 1e9, 1)
    row["decode_ceiling_at_decode_tok_s"] = round(at_decode / nbytes, 2)
    speeds = {}
    for opt in OPTS:
        speeds[f"llmc q4f16_1 {opt}"] = library_speeds(folder, f"lib-{opt}.so", reps)
    ours = llamacpp.bench(q4, THREADS, list(PROMPTS), GENERATE, reps)
    speeds["llama.cpp Q4_0"] = {**{f"pp{p}": median(ours[f"pp{p}"]) for p in PROMPTS},
                                "tg": median(ours[f"tg{GENERATE}"])}
    row["speed"] = {k: {m: round(v, 2) for m, v in d.items()} for k, d in speeds.items()}
    print(f"{name}: speed {row['speed']}", file=sys.stderr, flush=True)
    return row


def library_speeds(folder: Path, lib_name: str, reps: int) -> dict:
    """Median over reps of prefill tok/s per prompt length and of decode tok/s (median step)."""
    import numpy as np

    from llmc.runtime.library import ModelLibrary

    lib = ModelLibrary(folder / lib_name, folder)
    kv = lib.create_kv_cache(1, 2048)
    rng = np.random.default_rng(0)
    samples: dict[str, list[float]] = {}
    for rep in range(reps + 1):  # the first round warms up
        for n in PROMPTS:
            tokens = [int(t) for t in rng.integers(100, 30000, n)]
            lib.add_sequence(kv, 0)
            t0 = time.perf_counter()
            logits = lib.prefill(kv, 0, tokens)
            took = time.perf_counter() - t0
            if n == PROMPTS[0]:
                steps = []
                for _ in range(GENERATE):
                    t0 = time.perf_counter()
                    logits = lib.decode(kv, [0], [int(np.argmax(logits.reshape(-1)))])
                    steps.append(time.perf_counter() - t0)
                if rep:
                    samples.setdefault("tg", []).append(1 / median(steps))
            lib.remove_sequence(kv, 0)
            if rep:
                samples.setdefault(f"pp{n}", []).append(n / took)
    return {k: median(v) for k, v in samples.items()}


def table(rows: list[dict]) -> str:
    lines = ["| model | what | llmc | llama.cpp | ratio |", "|---|---|---|---|---|"]
    for r in rows:
        c = r["convert"]
        for ours, peer in (("mlc (gguf)", "Q4_0"), ("search (gguf)", "Q4_K_M"), ("search (safetensors)", "Q4_K_M")):
            a, b = c[f"llmc q4f16_1 {ours}"], c[f"llama-quantize {peer}"]
            lines.append(f"| {r['model']} | convert {ours} vs {peer}: s / peak RSS GiB | "
                         f"{a['seconds']} / {a['peak_rss_gib']} | {b['seconds']} / {b['peak_rss_gib']} | "
                         f"{b['seconds'] / a['seconds']:.2f}x speed, {a['peak_rss_gib'] / b['peak_rss_gib']:.1f}x RSS |")
        lines.append(f"| {r['model']} | cold compile s (O2) | {r['compile']['O2']['seconds']} | — | — |")
        theirs = r["speed"]["llama.cpp Q4_0"]
        for opt in OPTS:
            ours = r["speed"][f"llmc q4f16_1 {opt}"]
            for metric in [f"pp{p}" for p in PROMPTS] + ["tg"]:
                what = f"prefill {metric[2:]} tok/s" if metric.startswith("pp") else \
                    f"decode tok/s (ceiling {r['decode_ceiling_tok_s']}; " \
                    f"{r.get('decode_ceiling_at_decode_tok_s', '—')} at decode)"
                lines.append(f"| {r['model']} | {opt} {what} | {ours[metric]:.2f} | {theirs[metric]:.2f} | "
                             f"{ours[metric] / theirs[metric]:.2f}x |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot)", file=sys.stderr)
        return
    names = [r["model"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    kinds = ["llmc q4f16_1 O1", "llmc q4f16_1 O2", "llama.cpp Q4_0"]
    for i, kind in enumerate(kinds):
        a.bar([x + i * 0.27 for x in range(len(rows))], [r["speed"][kind]["tg"] for r in rows], 0.27, label=kind)
    a.plot([x + 0.27 for x in range(len(rows))], [r["decode_ceiling_tok_s"] for r in rows], "k_", markersize=20,
           label="bandwidth ceiling")
    a.set_xticks([x + 0.27 for x in range(len(rows))], names, fontsize=7)
    a.set(ylabel="decode tok/s")
    a.legend(fontsize=7)
    for i, label in enumerate(["llmc q4f16_1 mlc (gguf)", "llama-quantize Q4_0", "llmc q4f16_1 search (gguf)",
                               "llama-quantize Q4_K_M"]):
        b.bar([x + i * 0.2 for x in range(len(rows))], [r["convert"][label]["seconds"] for r in rows], 0.2,
              label=label)
    b.set_xticks([x + 0.3 for x in range(len(rows))], names, fontsize=7)
    b.set(ylabel="convert to 4-bit, s")
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


def main() -> int:
    all_models = models()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(all_models))
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--work", type=Path, default=ROOT / "bench-results" / "scale-work")
    args = ap.parse_args()
    picked = [m.strip() for m in args.models.split(",")]
    unknown = [m for m in picked if m not in all_models]
    if unknown:
        ap.error(f"unknown model {unknown[0]!r}; known: {', '.join(all_models)}")
    from llmc import devices

    bandwidth = read_bandwidth(devices.resolve("cpu", None, None).target)
    rows = []
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    saved = out / "bench_scale.json"
    # rows of models not run this time stay (a run of one model adds to the table, never erases it)
    kept = json.loads(saved.read_text())["models"] if saved.exists() else []
    for name in picked:
        shutil.rmtree(args.work, ignore_errors=True)
        # a folder per model: a library path loaded once stays the loaded library for this process (dlopen)
        work = args.work / name
        work.mkdir(parents=True)
        try:
            rows.append(one_model(name, *all_models[name], work, args.reps, bandwidth))
        except Exception as exc:  # noqa: BLE001 - one model's failure is reported; the others still run
            print(f"{name}: FAILED: {exc}", file=sys.stderr, flush=True)
            continue
        finally:
            shutil.rmtree(args.work, ignore_errors=True)  # tens of GB: never left behind
        done = {r["model"] for r in rows}
        every = [r for r in kept if r["model"] not in done] + rows
        every.sort(key=lambda r: list(all_models).index(r["model"]))
        saved.write_text(json.dumps({"threads": THREADS, "read_gb_s": bandwidth / 1e9, "models": every}, indent=1))
    rows = json.loads(saved.read_text())["models"] if saved.exists() else rows
    print(f"{THREADS} threads, read bandwidth {bandwidth / 1e9:.1f} GB/s; llama.cpp built from the llama-cpp-python "
          "sdist (--repack 0); random weights")
    print(table(rows))
    plot(rows, out / "bench_scale.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
