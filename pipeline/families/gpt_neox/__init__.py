"""GPT-NeoX (RedPajama-INCITE, Pythia): LayerNorm with bias, partial rotary, parallel residual.

A family folder: config.py, params.py, gguf.py, presets.py, nn.py (TVM, lower only), tiny.py (test models).
"""
from llmc.families.gpt_neox.config import normalize
from llmc.families.gpt_neox.gguf import GGUF_IGNORED, GGUF_NAMES, gguf_config, gguf_unpermute
from llmc.families.gpt_neox.params import hf_shapes, params
from llmc.families.gpt_neox.presets import PRESETS

MODEL_TYPES = ("gpt_neox",)
ALIASES = {"gpt_neox": "gpt_neox", "gptneox": "gpt_neox"}

__all__ = ["ALIASES", "GGUF_IGNORED", "GGUF_NAMES", "MODEL_TYPES", "PRESETS", "gguf_config", "gguf_unpermute",
           "hf_shapes", "normalize", "params"]
