"""llama.cpp's GGUF names and metadata for qwen2 and qwen3 files (llama.cpp does not permute their q/k)."""
from __future__ import annotations

from llmc.families.llama.gguf import GGUF_NAMES as LLAMA_NAMES
from llmc.families.llama.gguf import gguf_config as llama_gguf_config

GGUF_NAMES = {
    **LLAMA_NAMES,
    "blk.{i}.attn_q.bias": "model.layers.{i}.self_attn.q_proj.bias",
    "blk.{i}.attn_k.bias": "model.layers.{i}.self_attn.k_proj.bias",
    "blk.{i}.attn_v.bias": "model.layers.{i}.self_attn.v_proj.bias",
    "blk.{i}.attn_output.bias": "model.layers.{i}.self_attn.o_proj.bias",
    "blk.{i}.attn_q_norm.weight": "model.layers.{i}.self_attn.q_norm.weight",
    "blk.{i}.attn_k_norm.weight": "model.layers.{i}.self_attn.k_norm.weight",
}
GGUF_IGNORED = ("rope_freqs.weight",)


def gguf_unpermute(cfg: dict) -> dict[str, int]:
    return {}


def gguf_config(meta: dict, arch: str) -> dict:
    hf = llama_gguf_config(meta, arch)
    hf.pop("sliding_window", None)
    return hf
