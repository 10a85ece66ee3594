"""llama.cpp's GGUF names and metadata for gpt_neox files."""
from __future__ import annotations

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
