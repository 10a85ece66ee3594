"""Qwen1.5/Qwen2-MoE and Qwen3-MoE: the qwen2 / qwen3 attention with sparse mixture-of-experts MLPs (qwen2_moe
adds a shared expert gated by sigmoid(shared_expert_gate(x))); layers off decoder_sparse_step or listed in
mlp_only_layers keep a dense MLP.

A family folder: config.py, params.py, gguf.py, presets.py, nn.py (TVM, lower only), tiny.py (test models).
"""
from llmc.families.qwen_moe.gguf import GGUF_IGNORED, GGUF_NAMES, gguf_config, gguf_from_hf, gguf_to_hf, gguf_unpermute
from llmc.families.qwen_moe.config import normalize
from llmc.families.qwen_moe.params import hf_shapes, params
from llmc.families.qwen_moe.presets import PRESETS

MODEL_TYPES = ("qwen2_moe", "qwen3_moe")
ALIASES = {"qwen2_moe": "qwen2_moe", "qwen3_moe": "qwen3_moe", "qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe"}
CPU_ONLY = "the router and the gathered expert matmuls are llmc's CPU kernels"

__all__ = ["ALIASES", "CPU_ONLY", "GGUF_IGNORED", "GGUF_NAMES", "MODEL_TYPES", "PRESETS", "gguf_config",
           "gguf_from_hf", "gguf_to_hf", "gguf_unpermute", "hf_shapes", "normalize", "params"]
