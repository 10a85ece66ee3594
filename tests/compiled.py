"""Build model libraries for tests and run them next to transformers."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from llmc.commands.compile import compile_model
from llmc.commands.gen_config import generate_config
from llmc.commands.convert_weight import convert_weight


def build(model_dir: Path, quant: str, out: Path, store, overrides: str = "", conv: str = "chatml",
          lib_name: str = "lib.so", opt: str = "O1", **sizes) -> Path:
    """convert_weight + gen_config (once per out/) + compile; returns out (lib at out/lib_name)."""
    if not (out / "mlc-chat-config.json").exists():
        convert_weight(str(model_dir), quant, out, store)
        generate_config(str(model_dir), quant, conv, out, store, **sizes)
    if not (out / lib_name).exists():
        compile_model(str(out), out / lib_name, store, overrides=overrides, opt=opt)
    return out


def library(folder: Path, lib_name: str = "lib.so"):
    from llmc.runtime.library import ModelLibrary

    return ModelLibrary(folder / lib_name, folder)


def run_teacher_forced(lib, prompt: list[int], continuation: list[int]) -> list[np.ndarray]:
    """Logits after the prompt, then after each continuation token fed one at a time."""
    kv = lib.create_kv_cache(1, 1024)
    lib.add_sequence(kv, 0)
    out = [lib.prefill(kv, 0, prompt)]
    for tok in continuation:
        out.append(lib.decode(kv, [0], [tok])[0])
    return out


def hf_greedy(model, prompt: list[int], steps: int) -> tuple[list[int], list[np.ndarray]]:
    """transformers' greedy continuation and the logits at each step (full recompute, no cache)."""
    import torch

    seq, logits = list(prompt), []
    with torch.no_grad():
        for _ in range(steps + 1):
            last = model(torch.tensor([seq], dtype=torch.int64)).logits[0, -1].float().numpy()
            logits.append(last)
            seq.append(int(np.argmax(last)))
    return seq[len(prompt):-1], logits


def rel_error(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-12))
