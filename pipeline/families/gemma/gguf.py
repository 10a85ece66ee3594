"""llama.cpp's GGUF names and metadata for gemma2 and gemma3 files. llama.cpp stores every norm weight as
1 + w (its RMSNorm multiplies by the weight alone); the reader takes the 1 off again."""
from __future__ import annotations

import numpy as np

from llmc.families.llama.gguf import GGUF_NAMES as LLAMA_NAMES

GGUF_NAMES = {
    **{k: v for k, v in LLAMA_NAMES.items() if not k.startswith("blk.{i}.ffn_norm")},
    "blk.{i}.post_attention_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "blk.{i}.ffn_norm.weight": "model.layers.{i}.pre_feedforward_layernorm.weight",
    "blk.{i}.post_ffw_norm.weight": "model.layers.{i}.post_feedforward_layernorm.weight",
    "blk.{i}.attn_q_norm.weight": "model.layers.{i}.self_attn.q_norm.weight",
    "blk.{i}.attn_k_norm.weight": "model.layers.{i}.self_attn.k_norm.weight",
}
GGUF_IGNORED = ("rope_freqs.weight",)
# llama.cpp's gemma3 graph: every 6th layer full attention, windowed layers at RoPE base 10000
GEMMA3_PATTERN, GEMMA3_LOCAL_BASE = 6, 10000.0


def gguf_unpermute(cfg: dict) -> dict[str, int]:
    return {}


def gguf_to_hf(name: str, w: np.ndarray) -> np.ndarray:
    return w - np.float32(1) if name.endswith("norm.weight") else w


def gguf_from_hf(name: str, w: np.ndarray) -> np.ndarray:
    return w + np.float32(1) if name.endswith("norm.weight") else w


def gguf_config(meta: dict, arch: str) -> dict:
    def get(key, default=None):
        return meta.get(f"{arch}.{key}", default)

    heads, head_dim = get("attention.head_count"), get("attention.key_length")
    hf = {
        "hidden_size": get("embedding_length"),
        "intermediate_size": get("feed_forward_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": get("attention.head_count_kv", heads),
        "num_hidden_layers": get("block_count"),
        "rms_norm_eps": get("attention.layer_norm_rms_epsilon", 1e-6),
        "max_position_embeddings": get("context_length"),
        "vocab_size": get("vocab_size") or len(meta.get("tokenizer.ggml.tokens", [])),
        "sliding_window": get("attention.sliding_window", 4096),
        # GGUF has no query_pre_attn_scalar: llama.cpp scales by head_dim^-0.5 (hidden/heads for the 27B models)
        "query_pre_attn_scalar": head_dim,
    }
    if head_dim:
        hf["head_dim"] = head_dim
    if arch == "gemma2":
        hf["attn_logit_softcapping"] = get("attn_logit_softcapping", 50.0)
        hf["final_logit_softcapping"] = get("final_logit_softcapping", 30.0)
        hf["rope_theta"] = get("rope.freq_base", 10000.0)
    else:
        hf["rope_theta"] = get("rope.freq_base", 1000000.0)
        hf["rope_local_base_freq"] = GEMMA3_LOCAL_BASE
        hf["sliding_window_pattern"] = GEMMA3_PATTERN
        if get("rope.scaling.type") == "linear":
            hf["rope_scaling"] = {"rope_type": "linear", "factor": get("rope.scaling.factor", 1.0)}
    return hf
