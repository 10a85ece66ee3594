"""MLC's model_config for qwen2 and qwen3 (its QWen2Config / Qwen3Config fields), from a Hugging Face config."""
from __future__ import annotations

from llmc.errors import UserError
from llmc.families.base import context_window, flag, integer, number, positive, real, require, rope_parameters


def normalize(hf: dict, model_type: str = "qwen2") -> dict:
    rope = rope_parameters(hf)
    if rope.get("rope_type", "default") not in (None, "default"):
        raise UserError(f"{model_type} RoPE scaling {rope['rope_type']!r} is not supported")
    if flag(hf, "use_sliding_window", False):
        raise UserError(f"{model_type} with use_sliding_window is not supported")
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise UserError(f"{model_type} activation {act!r} is not supported (supported: silu)")
    heads = require(hf, "num_attention_heads", model_type=model_type)
    hidden = require(hf, "hidden_size", model_type=model_type)
    cfg = {
        "hidden_act": act,
        "hidden_size": hidden,
        "intermediate_size": require(hf, "intermediate_size", model_type=model_type),
        "num_attention_heads": heads,
        "num_hidden_layers": require(hf, "num_hidden_layers", model_type=model_type),
        "num_key_value_heads": integer(hf, "num_key_value_heads", default=heads),
        "rms_norm_eps": real(hf, "rms_norm_eps", 1e-6),
        "rope_theta": number(rope.get("rope_theta", 1000000)),
        "vocab_size": require(hf, "vocab_size", model_type=model_type),
        "tie_word_embeddings": flag(hf, "tie_word_embeddings", False),
        "context_window_size": context_window(hf, model_type),
        "prefill_chunk_size": 0,
        "tensor_parallel_shards": 1,
        "head_dim": integer(hf, "head_dim", default=max(hidden // heads, 1)),
        "max_batch_size": 1,
    }
    if model_type == "qwen3":
        cfg["attention_bias"] = flag(hf, "attention_bias", False)
    positive(cfg, "hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
             "vocab_size", "num_key_value_heads", "head_dim")
    if cfg["num_attention_heads"] % cfg["num_key_value_heads"]:
        raise UserError("num_attention_heads must be a multiple of num_key_value_heads")
    return cfg


def qkv_bias(cfg: dict) -> bool:
    """qwen2 always has a bias on q/k/v; qwen3 when attention_bias (then on o_proj too)."""
    return cfg.get("attention_bias", True)


def qk_norm(cfg: dict) -> bool:
    return "attention_bias" in cfg  # qwen3
