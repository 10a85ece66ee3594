"""GPT-NeoX (RedPajama-INCITE, Pythia): LayerNorm with bias, partial rotary, parallel residual."""
from __future__ import annotations

from ..errors import UserError
from .base import Param, context_window, positive, require, rope_parameters

MODEL_TYPES = ("gpt_neox",)
ACTIVATIONS = ("gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "relu", "silu")


def normalize(hf: dict, model_type: str = "gpt_neox") -> dict:
    rope = rope_parameters(hf)
    act = hf.get("hidden_act", "gelu")
    if act not in ACTIVATIONS:
        raise UserError(f"gpt_neox activation {act!r} is not supported (supported: {', '.join(ACTIVATIONS)})")
    if hf.get("attention_bias") is False:
        raise UserError("gpt_neox without attention bias is not supported")
    cfg = {
        "use_parallel_residual": bool(hf.get("use_parallel_residual", True)),
        "hidden_size": require(hf, "hidden_size", model_type=model_type),
        "intermediate_size": require(hf, "intermediate_size", model_type=model_type),
        "num_attention_heads": require(hf, "num_attention_heads", model_type=model_type),
        "num_hidden_layers": require(hf, "num_hidden_layers", model_type=model_type),
        "layer_norm_eps": float(hf.get("layer_norm_eps", 1e-5)),
        "vocab_size": require(hf, "vocab_size", model_type=model_type),
        "rotary_pct": float(rope.get("partial_rotary_factor", 0.25)),
        "position_embedding_base": _number(rope.get("rope_theta", 10000)),
        "hidden_act": act,
        "tie_word_embeddings": bool(hf.get("tie_word_embeddings", False)),
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


def _number(value):
    value = float(value)
    return int(value) if value.is_integer() else value


def params(cfg: dict) -> list[Param]:
    h, inter = cfg["hidden_size"], cfg["intermediate_size"]
    out = [Param("gpt_neox.embed_in.weight", (cfg["vocab_size"], h), "embedding", ("gpt_neox.embed_in.weight",))]

    def add(name, shape, kind, dtype=None):
        out.append(Param(name, shape, kind, (name,), dtype))

    for i in range(cfg["num_hidden_layers"]):
        p = f"gpt_neox.layers.{i}"
        add(f"{p}.input_layernorm.weight", (h,), "norm")
        add(f"{p}.input_layernorm.bias", (h,), "bias")
        add(f"{p}.post_attention_layernorm.weight", (h,), "norm")
        add(f"{p}.post_attention_layernorm.bias", (h,), "bias")
        add(f"{p}.attention.query_key_value.weight", (3 * h, h), "linear")
        add(f"{p}.attention.query_key_value.bias", (3 * h,), "bias")
        add(f"{p}.attention.dense.weight", (h, h), "linear")
        add(f"{p}.attention.dense.bias", (h,), "bias")
        add(f"{p}.mlp.dense_h_to_4h.weight", (inter, h), "linear")
        add(f"{p}.mlp.dense_h_to_4h.bias", (inter,), "bias")
        add(f"{p}.mlp.dense_4h_to_h.weight", (h, inter), "linear")
        add(f"{p}.mlp.dense_4h_to_h.bias", (h,), "bias", cfg.get("ffn_out_dtype"))
    add("gpt_neox.final_layer_norm.weight", (h,), "norm")
    add("gpt_neox.final_layer_norm.bias", (h,), "bias")
    if not cfg["tie_word_embeddings"]:
        add("embed_out.weight", (cfg["vocab_size"], h), "final_fc")
    return out


def hf_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    return {p.hf[0]: p.shape for p in params(cfg)}


GGUF_NAMES = {
    "token_embd.weight": "gpt_neox.embed_in.weight",
    "output_norm.weight": "gpt_neox.final_layer_norm.weight",
    "output_norm.bias": "gpt_neox.final_layer_norm.bias",
    "output.weight": "embed_out.weight",
    "blk.{i}.attn_norm.weight": "gpt_neox.layers.{i}.input_layernorm.weight",
    "blk.{i}.attn_norm.bias": "gpt_neox.layers.{i}.input_layernorm.bias",
    "blk.{i}.ffn_norm.weight": "gpt_neox.layers.{i}.post_attention_layernorm.weight",
    "blk.{i}.ffn_norm.bias": "gpt_neox.layers.{i}.post_attention_layernorm.bias",
    "blk.{i}.attn_qkv.weight": "gpt_neox.layers.{i}.attention.query_key_value.weight",
    "blk.{i}.attn_qkv.bias": "gpt_neox.layers.{i}.attention.query_key_value.bias",
    "blk.{i}.attn_output.weight": "gpt_neox.layers.{i}.attention.dense.weight",
    "blk.{i}.attn_output.bias": "gpt_neox.layers.{i}.attention.dense.bias",
    "blk.{i}.ffn_up.weight": "gpt_neox.layers.{i}.mlp.dense_h_to_4h.weight",
    "blk.{i}.ffn_up.bias": "gpt_neox.layers.{i}.mlp.dense_h_to_4h.bias",
    "blk.{i}.ffn_down.weight": "gpt_neox.layers.{i}.mlp.dense_4h_to_h.weight",
    "blk.{i}.ffn_down.bias": "gpt_neox.layers.{i}.mlp.dense_4h_to_h.bias",
}
GGUF_IGNORED = ()


def gguf_unpermute(cfg: dict) -> dict[str, int]:
    return {}


def gguf_config(meta: dict, arch: str) -> dict:
    def get(key, default=None):
        return meta.get(f"{arch}.{key}", default)

    hidden, heads = get("embedding_length"), get("attention.head_count")
    rot = get("rope.dimension_count")
    return {
        "hidden_size": hidden,
        "intermediate_size": get("feed_forward_length"),
        "num_attention_heads": heads,
        "num_hidden_layers": get("block_count"),
        "layer_norm_eps": get("attention.layer_norm_epsilon", 1e-5),
        "rotary_pct": (rot / (hidden // heads)) if rot and hidden and heads else 0.25,
        "rope_theta": get("rope.freq_base", 10000.0),
        "max_position_embeddings": get("context_length"),
        "use_parallel_residual": bool(get("use_parallel_residual", True)),
        "vocab_size": len(meta.get("tokenizer.ggml.tokens", [])),
    }
