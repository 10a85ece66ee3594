"""calibrate: how much each input channel of each linear layer matters, from the model run on a text.

Output `importance.npz`: per quantized parameter (MLC's name), the mean square of the activations
entering it over the calibration text, per input channel, normalized to mean 1 (llama.cpp's
imatrix, AWQ's activation statistics). quantize weighs each position's squared error by it.

The float model runs in transformers (its reading of the checkpoint is the project's numerical
oracle); one torch thread and float16-rounded statistics keep the output the same on every machine.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from llmc.errors import NotAvailable, UserError

NAME = "calibrate"
VERSION = "1"
TOOLS = ("python", "llmc", "numpy", "torch", "transformers", "gguf")
EPHEMERAL = False
DEFAULTS = {"source_format": "huggingface-safetensor", "files": [], "text_file": "", "max_tokens": 4096,
            "window": 512}
# Channels that never fire still get some weight: their weights matter for inputs unlike the text.
FLOOR = 1e-3


def run(inputs: dict[str, Path], options: dict, out_dir: Path) -> None:
    model_record = json.loads((inputs["model"] / "model.json").read_text())
    text = (inputs["text"] / options["text_file"]).read_text(encoding="utf-8", errors="replace")
    stats = activation_stats(inputs["weights"], options["source_format"], options["files"], text,
                             options["max_tokens"], options["window"])
    importance = {}
    has_output = any(p["kind"] == "final_fc" for p in model_record["params"])
    for p in model_record["params"]:
        module = p["hf"][0].removesuffix(".weight")
        if p["kind"] == "embedding" and not has_output:
            module = "lm_head"  # a tied embedding is also the output layer: its inputs are the final hidden states
        if p["kind"] in ("linear", "final_fc", "embedding") and module in stats:
            importance[p["name"]] = normalized(stats[module])
    np.savez(out_dir / "importance.npz", **importance)


def normalized(sum_squares: np.ndarray) -> np.ndarray:
    mean = float(sum_squares.mean())
    x = sum_squares / mean if mean > 0 else np.ones_like(sum_squares)
    return np.maximum(x, FLOOR).astype(np.float16).astype(np.float32)


def activation_stats(weights: Path, source_format: str, files: list[str], text: str, max_tokens: int,
                     window: int) -> dict[str, np.ndarray]:
    """Per nn.Linear module name: the sum over the text's tokens of each input channel's square."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise NotAvailable(f"--calibration-text runs the model in transformers, which is not installed "
                           f"({exc.name}): pip install 'llmc[calibration]'") from None
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress shows on a terminal; theirs would not stay quiet
    hf_logging.set_verbosity_error()
    torch.set_num_threads(1)
    if source_format == "gguf":
        where, extra = weights, {"gguf_file": files[0]}
    elif source_format in ("huggingface-safetensor", "huggingface-torch") and (weights / "config.json").is_file():
        where, extra = weights, {}
    else:
        raise UserError(f"--calibration-text needs a Hugging Face folder (config.json beside the weights) or a "
                        f"GGUF file; the weights here are {source_format} in {weights}")
    tokenizer = AutoTokenizer.from_pretrained(where, **extra)
    model = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32, **extra).eval()
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
    if len(ids) < 16:
        raise UserError(f"the calibration text has {len(ids)} tokens; give at least a paragraph (thousands are better)")
    sums: dict[str, torch.Tensor] = {}

    def hook(name):
        def record(_module, args):
            x = args[0].detach().to(torch.float64)
            sums[name] = sums.get(name, 0) + (x * x).reshape(-1, x.shape[-1]).sum(dim=0)
        return record

    handles = [m.register_forward_pre_hook(hook(name)) for name, m in model.named_modules()
               if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for start in range(0, len(ids), window):
            model(torch.tensor([ids[start:start + window]], dtype=torch.int64))
    for h in handles:
        h.remove()
    return {name: s.numpy() for name, s in sums.items()}
