"""MLC's model_config for gpt_neox, from a Hugging Face config.json."""
from __future__ import annotations

from llmc.errors import UserError
from llmc.families.base import (
    context_window,
    flag,
    number,
    positive,
    real,
    require,
    rope_parameters,
)

ACTIVATIONS = ("gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "relu", "silu")


def normalize(hf: dict, model_type: str = "gpt_neox") -> dict:
    rope = rope_parameters(hf)
    act = hf.get("hidden_act", "gelu")
    if act not in ACTIVATIONS:
        raise UserError(f"gpt_neox activation {act!r} is not supported (supported: {', '.join(ACTIVATIONS)})")
    if hf.get("attention_bias") is False:
        raise UserError("gpt_neox without attention bias is not supported")
    cfg = {
        "use_parallel_residual": flag(hf, "use_parallel_residual", True),
        "hidden_size": require(hf, "hidden_size", model_type=model_type),
        "intermediate_size": require(hf, "intermediate_size", model_type=model_type),
        "num_attention_heads": require(hf, "num_attention_heads", model_type=model_type),
        "num_hidden_layers": require(hf, "num_hidden_layers", model_type=model_type),
        "layer_norm_eps": real(hf, "layer_norm_eps", 1e-5),
        "vocab_size": require(hf, "vocab_size", model_type=model_type),
        "rotary_pct": real(rope, "partial_rotary_factor", 0.25),
        "position_embedding_base": number(rope.get("rope_theta", 10000)),
        "hidden_act": act,
        "tie_word_embeddings": flag(hf, "tie_word_embeddings", False),
        "context_window_size": context_window(hf, model_type),
        "prefill_chunk_size": 0,
        "tensor_parallel_shards": 1,
        "ffn_out_dtype": "float32",
        "max_batch_size": 1,
    }
    positive(cfg, "hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers", "vocab_size")
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        raise UserError("hidden_size must be a multiple of num_attention_heads")
    if not 0 < cfg["rotary_pct"] <= 1:
        raise UserError(f"rotary_pct {cfg['rotary_pct']} must be in (0, 1]")
    if rope.get("rope_type", "default") not in (None, "default"):
        raise UserError(f"gpt_neox RoPE scaling {rope['rope_type']!r} is not supported")
    return cfg
