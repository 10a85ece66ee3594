"""llama.cpp's GGUF names and metadata for phi3 files (fused attn_qkv and ffn_up as the checkpoint has them;
the LongRoPE factors as rope_factors_* tensors, read from metadata-free files as the default RoPE)."""
from __future__ import annotations

from llmc.errors import NotAvailable

GGUF_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "blk.{i}.attn_norm.weight": "model.layers.{i}.input_layernorm.weight",
    "blk.{i}.attn_qkv.weight": "model.layers.{i}.self_attn.qkv_proj.weight",
    "blk.{i}.attn_output.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "blk.{i}.ffn_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "blk.{i}.ffn_up.weight": "model.layers.{i}.mlp.gate_up_proj.weight",
    "blk.{i}.ffn_down.weight": "model.layers.{i}.mlp.down_proj.weight",
}
GGUF_IGNORED: tuple[str, ...] = ()


def gguf_unpermute(cfg: dict) -> dict[str, int]:
    return {}


def gguf_config(meta: dict, arch: str) -> dict:
    def get(key, default=None):
        return meta.get(f"{arch}.{key}", default)

    if get("rope.scaling.original_context_length"):
        raise NotAvailable("phi3 GGUF files with LongRoPE factors are not read yet; convert from the Hugging "
                           "Face folder")
    hidden, heads = get("embedding_length"), get("attention.head_count")
    rot = get("rope.dimension_count")
    return {
        "hidden_size": hidden,
        "intermediate_size": get("feed_forward_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": get("attention.head_count_kv", heads),
        "num_hidden_layers": get("block_count"),
        "rms_norm_eps": get("attention.layer_norm_rms_epsilon", 1e-5),
        "rope_theta": get("rope.freq_base", 10000.0),
        "partial_rotary_factor": rot / (hidden // heads) if rot and hidden and heads else 1.0,
        "max_position_embeddings": get("context_length"),
        "vocab_size": get("vocab_size") or len(meta.get("tokenizer.ggml.tokens", [])),
        "sliding_window": get("attention.sliding_window"),
    }
