"""Llama (Llama 2/3, SmolLM2) and Mistral: RMSNorm, RoPE, GQA, SwiGLU; Mistral adds a sliding window.

A family folder: config.py (normalize a Hugging Face config), params.py (the parameter spec), gguf.py
(llama.cpp's names), presets.py, nn.py (the TVM module, imported at lower only), tiny.py (test models).
"""
from llmc.families.llama.config import normalize
from llmc.families.llama.gguf import GGUF_IGNORED, GGUF_NAMES, gguf_config, gguf_unpermute
from llmc.families.llama.params import hf_shapes, params
from llmc.families.llama.presets import PRESETS

MODEL_TYPES = ("llama", "mistral")
# Hugging Face model_type values and GGUF general.architecture names that are this family.
ALIASES = {"llama": "llama", "mistral": "mistral"}

__all__ = ["ALIASES", "GGUF_IGNORED", "GGUF_NAMES", "MODEL_TYPES", "PRESETS", "gguf_config", "gguf_unpermute",
           "hf_shapes", "normalize", "params"]
