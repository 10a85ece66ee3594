"""MLC's model_config for llama and mistral, from a Hugging Face config.json."""
from __future__ import annotations

from llmc.errors import UserError
from llmc.families.base import (
    MAX_CONTEXT,
    context_window,
    flag,
    integer,
    number,
    positive,
    real,
    require,
    rope_parameters,
)


def normalize(hf: dict, model_type: str = "llama") -> dict:
    """MLC's model_config for this architecture, from a Hugging Face config.json."""
    rope = rope_parameters(hf)
    heads = require(hf, "num_attention_heads", model_type=model_type)
    hidden = require(hf, "hidden_size", model_type=model_type)
    cfg = {
        "hidden_size": hidden,
        "intermediate_size": require(hf, "intermediate_size", model_type=model_type),
        "num_attention_heads": heads,
        "num_hidden_layers": require(hf, "num_hidden_layers", model_type=model_type),
        "rms_norm_eps": real(hf, "rms_norm_eps", 1e-6),
        "vocab_size": require(hf, "vocab_size", model_type=model_type),
        "tie_word_embeddings": flag(hf, "tie_word_embeddings", False),
        "position_embedding_base": number(rope.get("rope_theta", 10000)),
        "rope_scaling": _rope_scaling(rope),
        "context_window_size": context_window(hf, model_type),
        "prefill_chunk_size": 0,
        "num_key_value_heads": integer(hf, "num_key_value_heads", default=heads),
        "head_dim": integer(hf, "head_dim", default=max(hidden // heads, 1)),
        "tensor_parallel_shards": 1,
        "pipeline_parallel_stages": 1,
        "max_batch_size": 1,
    }
    if model_type == "llama":
        cfg["disaggregation"] = False  # MLC's LlamaConfig field (prefill/decode on separate engines)
    if model_type in ("mistral", "mixtral"):
        window = integer(hf, "sliding_window", default=0, low=0, high=MAX_CONTEXT)
        cfg["sliding_window_size"] = window or -1
        cfg["attention_sink_size"] = 0
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        raise UserError(f"{model_type} with attention_bias/mlp_bias is not supported")
    positive(cfg, "hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
             "vocab_size", "num_key_value_heads", "head_dim")
    if cfg["num_attention_heads"] % cfg["num_key_value_heads"]:
        raise UserError("num_attention_heads must be a multiple of num_key_value_heads")
    return cfg


def _rope_scaling(rope: dict) -> dict | None:
    kind = rope.get("rope_type", "default")
    if kind in (None, "default"):
        return None
    if kind != "llama3":
        raise UserError(f"RoPE scaling {kind!r} is not supported (supported: llama3)")
    for name in ("factor", "original_max_position_embeddings"):
        if rope.get(name) is None:
            raise UserError(f"llama3 RoPE scaling needs {name} in rope_parameters / rope_scaling")
    return {
        "rope_type": "llama3",
        "factor": real(rope, "factor", 1.0),
        "low_freq_factor": real(rope, "low_freq_factor", 1.0),
        "high_freq_factor": real(rope, "high_freq_factor", 4.0),
        "original_max_position_embeddings": integer(rope, "original_max_position_embeddings", high=MAX_CONTEXT),
    }
