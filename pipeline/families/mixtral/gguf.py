"""llama.cpp's names and metadata for Mixtral GGUF files: a llama-architecture file with expert_count and the
experts stacked per layer in ffn_{gate,up,down}_exps ({e} marks the expert axis, axis 0 of the stacked tensor)."""
from __future__ import annotations

from llmc.families import experts
from llmc.families.llama.gguf import GGUF_NAMES as LLAMA_NAMES
from llmc.families.llama.gguf import gguf_config as llama_gguf_config
from llmc.families.llama.gguf import gguf_unpermute

_DENSE = ("blk.{i}.ffn_gate.weight", "blk.{i}.ffn_up.weight", "blk.{i}.ffn_down.weight")
GGUF_NAMES = {
    **{k: v for k, v in LLAMA_NAMES.items() if k not in _DENSE},
    "blk.{i}.ffn_gate_inp.weight": "model.layers.{i}.block_sparse_moe.gate.weight",
    "blk.{i}.ffn_gate_exps.weight": "model.layers.{i}.block_sparse_moe.experts.{e}.w1.weight",
    "blk.{i}.ffn_up_exps.weight": "model.layers.{i}.block_sparse_moe.experts.{e}.w3.weight",
    "blk.{i}.ffn_down_exps.weight": "model.layers.{i}.block_sparse_moe.experts.{e}.w2.weight",
}
GGUF_IGNORED = ("rope_freqs.weight",)

__all__ = ["GGUF_IGNORED", "GGUF_NAMES", "gguf_config", "gguf_unpermute"]


def gguf_config(meta: dict, arch: str) -> dict:
    hf = llama_gguf_config(meta, arch)
    moe = experts.gguf_config(meta, arch, renormalized=True)
    hf.update(num_local_experts=moe["num_experts"], num_experts_per_tok=moe["num_experts_per_tok"])
    return hf
