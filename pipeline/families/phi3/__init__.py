"""Phi-3 / Phi-3.5-mini and Phi-4-mini: llama's decoder with checkpoints already fused (qkv_proj,
gate_up_proj), partial rotary (partial_rotary_factor) and LongRoPE (per-dimension short factors and the
attention factor on cos/sin) applied in the model.

A family folder: config.py, params.py, gguf.py, presets.py, nn.py (TVM, lower only), tiny.py (test models).
"""
from llmc.families.phi3.config import normalize
from llmc.families.phi3.gguf import GGUF_IGNORED, GGUF_NAMES, gguf_config, gguf_unpermute
from llmc.families.phi3.params import hf_shapes, params
from llmc.families.phi3.presets import PRESETS

MODEL_TYPES = ("phi3",)
ALIASES = {"phi3": "phi3"}

__all__ = ["ALIASES", "GGUF_IGNORED", "GGUF_NAMES", "MODEL_TYPES", "PRESETS", "gguf_config", "gguf_unpermute",
           "hf_shapes", "normalize", "params"]
