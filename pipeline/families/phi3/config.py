"""MLC's model_config for phi3 (its Phi3Config fields), from a Hugging Face config.json.

LongRoPE: transformers rotates every position of a sequence with the short factors while the sequence is
at most original_max_position_embeddings long, and with the long factors (every position, the cached ones
recomputed: its generate drops the cache when a sequence crosses the length) once it is longer. A paged
cache holds rotated keys, so a library exports the functions twice (nn.py): MLC's names switch factors by
position (a token at or past the original length takes the long ones, as MLC's runtimes expect), and
`*_long` variants take the long factors everywhere; llmc's runtime (runtime/library.py) runs a sequence
with the short ones until it would pass the original length, then prefills it again with `*_long`.
"""
from __future__ import annotations

import math

from llmc.errors import UserError
from llmc.families.base import MAX_CONTEXT, context_window, flag, integer, number, positive, real, require, rope_parameters


def normalize(hf: dict, model_type: str = "phi3") -> dict:
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise UserError(f"phi3 activation {act!r} is not supported (supported: silu)")
    heads = require(hf, "num_attention_heads", model_type=model_type)
    hidden = require(hf, "hidden_size", model_type=model_type)
    rope = rope_parameters(hf)
    max_pos = context_window(hf, model_type)
    cfg = {
        "hidden_size": hidden,
        "vocab_size": require(hf, "vocab_size", model_type=model_type),
        "num_hidden_layers": require(hf, "num_hidden_layers", model_type=model_type),
        "num_attention_heads": heads,
        "intermediate_size": require(hf, "intermediate_size", model_type=model_type),
        "rms_norm_eps": real(hf, "rms_norm_eps", 1e-5),
        "num_key_value_heads": integer(hf, "num_key_value_heads", default=heads),
        "max_position_embeddings": max_pos,
        "position_embedding_base": number(rope.get("rope_theta", 10000.0)),
        "partial_rotary_factor": real(rope, "partial_rotary_factor", 1.0),
        "tie_word_embeddings": flag(hf, "tie_word_embeddings", False),
        "context_window_size": max_pos,
        "prefill_chunk_size": 0,
        "head_dim": integer(hf, "head_dim", default=max(hidden // heads, 1)),
        "tensor_parallel_shards": 1,
        "max_batch_size": 1,
    }
    cfg.update(_longrope(rope, hf, cfg))
    window = hf.get("sliding_window")
    if window is not None and integer(hf, "sliding_window", high=MAX_CONTEXT) < cfg["context_window_size"]:
        cfg["sliding_window_size"], cfg["attention_sink_size"] = window, 0
    positive(cfg, "hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
             "vocab_size", "num_key_value_heads", "head_dim")
    if cfg["num_attention_heads"] % cfg["num_key_value_heads"]:
        raise UserError("num_attention_heads must be a multiple of num_key_value_heads")
    if not 0 < cfg["partial_rotary_factor"] <= 1 or rotary_dim(cfg) % 2:
        raise UserError("partial_rotary_factor must leave an even number of rotary dimensions in (0, head_dim]")
    return cfg


def _longrope(rope: dict, hf: dict, cfg: dict) -> dict:
    kind = rope.get("rope_type", "default")
    if kind in (None, "default"):
        return {"rope_scaling": None}
    if kind not in ("longrope", "su"):
        raise UserError(f"phi3 RoPE scaling {kind!r} is not supported (supported: longrope)")
    original = integer(rope, "original_max_position_embeddings", "original_max_position_embeddings",
                       default=hf.get("original_max_position_embeddings", cfg["max_position_embeddings"]),
                       high=MAX_CONTEXT)
    short = rope.get("short_factor")
    if not isinstance(short, list) or len(short) != rotary_dim(cfg) // 2:
        raise UserError(f"phi3 LongRoPE short_factor must list {rotary_dim(cfg) // 2} numbers")
    if not isinstance(rope.get("long_factor", short), list) or len(rope.get("long_factor", short)) != len(short):
        raise UserError(f"phi3 LongRoPE long_factor must list {len(short)} numbers")
    factor = rope.get("factor") or cfg["max_position_embeddings"] / original
    attention = rope.get("attention_factor")
    if attention is None:
        attention = 1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(original))
    scaling = {"rope_type": "longrope", "short_factor": [float(x) for x in short],
               "long_factor": [float(x) for x in rope.get("long_factor") or short],
               "attention_factor": float(attention), "original_max_position_embeddings": original}
    return {"rope_scaling": scaling, "original_max_position_embeddings": original}


def rotary_dim(cfg: dict) -> int:
    return int(cfg["head_dim"] * cfg["partial_rotary_factor"])


def inverse_frequencies(cfg: dict, factors: str = "short_factor"):
    """transformers' inv_freq (float32): 1 / (factor · base^(2i/dim)) under LongRoPE (short or long factors)."""
    import numpy as np

    dim = rotary_dim(cfg)
    exponents = np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / np.float32(dim)
    powers = np.power(np.float32(cfg["position_embedding_base"]), exponents, dtype=np.float32)
    scaling = cfg.get("rope_scaling")
    if scaling:
        powers = np.asarray(scaling[factors], np.float32) * powers
    return (np.float32(1.0) / powers).astype(np.float32)
