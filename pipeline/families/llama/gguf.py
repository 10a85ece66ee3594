"""llama.cpp's GGUF names and metadata for llama-architecture files."""
from __future__ import annotations

# llama.cpp's names for the tensors of a llama-architecture GGUF file.
GGUF_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
    "blk.{i}.attn_norm.weight": "model.layers.{i}.input_layernorm.weight",
    "blk.{i}.attn_q.weight": "model.layers.{i}.self_attn.q_proj.weight",
    "blk.{i}.attn_k.weight": "model.layers.{i}.self_attn.k_proj.weight",
    "blk.{i}.attn_v.weight": "model.layers.{i}.self_attn.v_proj.weight",
    "blk.{i}.attn_output.weight": "model.layers.{i}.self_attn.o_proj.weight",
    "blk.{i}.ffn_norm.weight": "model.layers.{i}.post_attention_layernorm.weight",
    "blk.{i}.ffn_gate.weight": "model.layers.{i}.mlp.gate_proj.weight",
    "blk.{i}.ffn_up.weight": "model.layers.{i}.mlp.up_proj.weight",
    "blk.{i}.ffn_down.weight": "model.layers.{i}.mlp.down_proj.weight",
}
GGUF_IGNORED = ("rope_freqs.weight",)


def gguf_unpermute(cfg: dict) -> dict[str, int]:
    """HF tensors that llama.cpp stores with its rotary permutation, and their head counts."""
    out = {}
    for i in range(cfg["num_hidden_layers"]):
        out[f"model.layers.{i}.self_attn.q_proj.weight"] = cfg["num_attention_heads"]
        out[f"model.layers.{i}.self_attn.k_proj.weight"] = cfg["num_key_value_heads"]
    return out


def gguf_config(meta: dict, arch: str) -> dict:
    """A Hugging Face-style config from a llama-architecture GGUF's metadata."""
    def get(key, default=None):
        return meta.get(f"{arch}.{key}", default)

    heads = get("attention.head_count")
    hf = {
        "hidden_size": get("embedding_length"),
        "intermediate_size": get("feed_forward_length"),
        "num_attention_heads": heads,
        "num_hidden_layers": get("block_count"),
        "num_key_value_heads": get("attention.head_count_kv", heads),
        "rms_norm_eps": get("attention.layer_norm_rms_epsilon", 1e-5),
        "rope_theta": get("rope.freq_base", 10000.0),
        "max_position_embeddings": get("context_length"),
        "vocab_size": get("vocab_size") or len(meta.get("tokenizer.ggml.tokens", [])),
        "sliding_window": get("attention.sliding_window"),
    }
    key_len = get("attention.key_length")
    if key_len:
        hf["head_dim"] = key_len
    return hf
