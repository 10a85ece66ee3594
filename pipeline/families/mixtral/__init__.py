"""Mixtral: Mistral's decoder with a sparse mixture of experts (8 experts, top-2, renormalized) in every layer.

A family folder: config.py, params.py, gguf.py, presets.py, nn.py (TVM, lower only), tiny.py (test models).
"""
from llmc.families.mixtral.config import normalize
from llmc.families.mixtral.gguf import GGUF_IGNORED, GGUF_NAMES, gguf_config, gguf_unpermute
from llmc.families.mixtral.params import hf_shapes, params
from llmc.families.mixtral.presets import PRESETS

MODEL_TYPES = ("mixtral",)
ALIASES = {"mixtral": "mixtral"}
CPU_ONLY = "the router and the gathered expert matmuls are llmc's CPU kernels"

__all__ = ["ALIASES", "CPU_ONLY", "GGUF_IGNORED", "GGUF_NAMES", "MODEL_TYPES", "PRESETS", "gguf_config",
           "gguf_unpermute", "hf_shapes", "normalize", "params"]
