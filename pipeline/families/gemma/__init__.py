"""Gemma 2 and Gemma 3 (text): RMSNorm x·(1+w), embeddings scaled by sqrt(hidden), GeGLU (tanh GELU), four
norms per layer, query_pre_attn_scalar, windowed and full attention layers in one model (the window
travels to llmc's CPU kernels per layer); gemma2 soft-caps attention and final logits, gemma3 adds q/k
RMSNorm and a RoPE base per layer kind.

A family folder: config.py, params.py, gguf.py, presets.py, nn.py (TVM, lower only), tiny.py (test models).
"""
from llmc.families.gemma.config import normalize
from llmc.families.gemma.gguf import GGUF_IGNORED, GGUF_NAMES, gguf_config, gguf_from_hf, gguf_to_hf, gguf_unpermute
from llmc.families.gemma.params import hf_shapes, params
from llmc.families.gemma.presets import PRESETS

MODEL_TYPES = ("gemma2", "gemma3")
ALIASES = {"gemma2": "gemma2", "gemma3_text": "gemma3", "gemma3": "gemma3"}
CPU_ONLY = "attention soft-capping and per-layer sliding windows live in llmc's CPU attention kernels"

__all__ = ["ALIASES", "CPU_ONLY", "GGUF_IGNORED", "GGUF_NAMES", "MODEL_TYPES", "PRESETS", "gguf_config",
           "gguf_from_hf", "gguf_to_hf", "gguf_unpermute", "hf_shapes", "normalize", "params"]
