"""GPT-2: learned absolute position embeddings, LayerNorm with bias, Conv1D weights stored [in, out],
a fused c_attn with bias, a non-gated tanh-GELU MLP, and the head tied to the token embedding.

A family folder: config.py, params.py, gguf.py, presets.py, nn.py (TVM, lower only), tiny.py (test models).
"""
from llmc.families.gpt2.config import normalize
from llmc.families.gpt2.gguf import GGUF_IGNORED, GGUF_NAMES, gguf_config, gguf_from_hf, gguf_to_hf, gguf_unpermute
from llmc.families.gpt2.params import hf_shapes, params
from llmc.families.gpt2.presets import PRESETS

MODEL_TYPES = ("gpt2",)
ALIASES = {"gpt2": "gpt2"}

__all__ = ["ALIASES", "GGUF_IGNORED", "GGUF_NAMES", "MODEL_TYPES", "PRESETS", "gguf_config", "gguf_from_hf", "gguf_to_hf", "gguf_unpermute",
           "hf_shapes", "normalize", "params"]
