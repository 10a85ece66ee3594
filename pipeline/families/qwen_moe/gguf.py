"""llama.cpp's names and metadata for qwen2moe / qwen3moe GGUF files: qwen's attention, experts stacked per layer
in ffn_{gate,up,down}_exps ({e} marks the expert axis), qwen2moe's shared expert in ffn_*_shexp with its gate
stored as a vector."""
from __future__ import annotations

import numpy as np

from llmc.families import experts
from llmc.families.qwen.gguf import GGUF_IGNORED, gguf_unpermute
from llmc.families.qwen.gguf import GGUF_NAMES as QWEN_NAMES
from llmc.families.qwen.gguf import gguf_config as qwen_gguf_config

GGUF_NAMES = {
    **QWEN_NAMES,
    "blk.{i}.ffn_gate_inp.weight": "model.layers.{i}.mlp.gate.weight",
    "blk.{i}.ffn_gate_exps.weight": "model.layers.{i}.mlp.experts.{e}.gate_proj.weight",
    "blk.{i}.ffn_up_exps.weight": "model.layers.{i}.mlp.experts.{e}.up_proj.weight",
    "blk.{i}.ffn_down_exps.weight": "model.layers.{i}.mlp.experts.{e}.down_proj.weight",
    "blk.{i}.ffn_gate_inp_shexp.weight": "model.layers.{i}.mlp.shared_expert_gate.weight",
    "blk.{i}.ffn_gate_shexp.weight": "model.layers.{i}.mlp.shared_expert.gate_proj.weight",
    "blk.{i}.ffn_up_shexp.weight": "model.layers.{i}.mlp.shared_expert.up_proj.weight",
    "blk.{i}.ffn_down_shexp.weight": "model.layers.{i}.mlp.shared_expert.down_proj.weight",
}

__all__ = ["GGUF_IGNORED", "GGUF_NAMES", "gguf_config", "gguf_from_hf", "gguf_to_hf", "gguf_unpermute"]


def gguf_config(meta: dict, arch: str) -> dict:
    hf = qwen_gguf_config(meta, arch)
    moe = experts.gguf_config(meta, arch, renormalized=arch == "qwen3moe")
    if hf.get("intermediate_size") is None:
        hf["intermediate_size"] = moe["moe_intermediate_size"]  # every layer sparse: no dense MLP to size
    return {**hf, **moe}


def gguf_to_hf(name: str, w: np.ndarray) -> np.ndarray:
    return w.reshape(1, -1) if name.endswith("shared_expert_gate.weight") else w


def gguf_from_hf(name: str, w: np.ndarray) -> np.ndarray:
    return w.reshape(-1) if name.endswith("shared_expert_gate.weight") else w
