"""Qwen2 / Qwen2.5 and Qwen3: llama's decoder with a bias on the fused q/k/v (qwen2), or per-head q/k
RMSNorm before RoPE and head_dim from the config (qwen3).

A family folder: config.py, params.py, gguf.py, presets.py, nn.py (TVM, lower only), tiny.py (test models).
"""
from llmc.families.qwen.config import normalize
from llmc.families.qwen.gguf import GGUF_IGNORED, GGUF_NAMES, gguf_config, gguf_unpermute
from llmc.families.qwen.params import hf_shapes, params
from llmc.families.qwen.presets import PRESETS

MODEL_TYPES = ("qwen2", "qwen3")
ALIASES = {"qwen2": "qwen2", "qwen3": "qwen3"}

__all__ = ["ALIASES", "GGUF_IGNORED", "GGUF_NAMES", "MODEL_TYPES", "PRESETS", "gguf_config", "gguf_unpermute",
           "hf_shapes", "normalize", "params"]
