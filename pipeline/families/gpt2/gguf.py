"""llama.cpp's GGUF names and metadata for gpt2 files. llama.cpp stores the Conv1D weights transposed to
[out, in] and writes the tied head again as output.weight (ignored: the head is the embedding)."""
from __future__ import annotations

import numpy as np

_LAYER = {
    "attn_norm": "ln_1", "attn_qkv": "attn.c_attn", "attn_output": "attn.c_proj", "ffn_norm": "ln_2",
    "ffn_up": "mlp.c_fc", "ffn_down": "mlp.c_proj",
}
GGUF_NAMES = {
    "token_embd.weight": "transformer.wte.weight",
    "position_embd.weight": "transformer.wpe.weight",
    "output_norm.weight": "transformer.ln_f.weight",
    "output_norm.bias": "transformer.ln_f.bias",
    **{f"blk.{{i}}.{ours}.{part}": f"transformer.h.{{i}}.{theirs}.{part}"
       for ours, theirs in _LAYER.items() for part in ("weight", "bias")},
}
GGUF_IGNORED = ("output.weight",)
_CONV1D = (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")


def gguf_unpermute(cfg: dict) -> dict[str, int]:
    return {}


def gguf_to_hf(name: str, w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w.T) if name.endswith(_CONV1D) else w


gguf_from_hf = gguf_to_hf  # a transpose both ways


def gguf_config(meta: dict, arch: str) -> dict:
    def get(key, default=None):
        return meta.get(f"{arch}.{key}", default)

    return {
        "n_embd": get("embedding_length"),
        "n_inner": get("feed_forward_length"),
        "n_head": get("attention.head_count"),
        "n_layer": get("block_count"),
        "layer_norm_epsilon": get("attention.layer_norm_epsilon", 1e-5),
        "n_positions": get("context_length"),
        "vocab_size": len(meta.get("tokenizer.ggml.tokens", [])),
        "tie_word_embeddings": True,
    }
