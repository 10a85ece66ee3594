"""Llama (Llama-2/3, SmolLM2) and Mistral: RMSNorm, RoPE, GQA, SwiGLU."""
from __future__ import annotations

from ..errors import UserError
from .base import Param, context_window, positive, require, rope_parameters

MODEL_TYPES = ("llama", "mistral")


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
        "rms_norm_eps": float(hf.get("rms_norm_eps", 1e-6)),
        "vocab_size": require(hf, "vocab_size", model_type=model_type),
        "tie_word_embeddings": bool(hf.get("tie_word_embeddings", False)),
        "position_embedding_base": _number(rope.get("rope_theta", 10000)),
        "rope_scaling": _rope_scaling(rope),
        "context_window_size": context_window(hf, model_type),
        "prefill_chunk_size": 0,
        "num_key_value_heads": hf.get("num_key_value_heads") or heads,
        "head_dim": hf.get("head_dim") or hidden // heads,
        "tensor_parallel_shards": 1,
        "pipeline_parallel_stages": 1,
        "max_batch_size": 1,
    }
    if model_type == "mistral":
        window = hf.get("sliding_window")
        cfg["sliding_window_size"] = int(window) if window else -1
        cfg["attention_sink_size"] = 0
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        raise UserError(f"{model_type} with attention_bias/mlp_bias is not supported")
    positive(cfg, "hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
             "vocab_size", "num_key_value_heads", "head_dim")
    if cfg["num_attention_heads"] % cfg["num_key_value_heads"]:
        raise UserError("num_attention_heads must be a multiple of num_key_value_heads")
    return cfg


def _number(value):
    value = float(value)
    return int(value) if value.is_integer() else value


def _rope_scaling(rope: dict) -> dict | None:
    kind = rope.get("rope_type", "default")
    if kind in (None, "default"):
        return None
    if kind != "llama3":
        raise UserError(f"RoPE scaling {kind!r} is not supported (supported: llama3)")
    return {
        "rope_type": "llama3",
        "factor": float(rope["factor"]),
        "low_freq_factor": float(rope.get("low_freq_factor", 1.0)),
        "high_freq_factor": float(rope.get("high_freq_factor", 4.0)),
        "original_max_position_embeddings": int(rope["original_max_position_embeddings"]),
    }


def params(cfg: dict) -> list[Param]:
    h, hd = cfg["hidden_size"], cfg["head_dim"]
    q, kv, inter = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd, cfg["intermediate_size"]
    out = [Param("model.embed_tokens.weight", (cfg["vocab_size"], h), "embedding", ("model.embed_tokens.weight",))]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        out += [
            Param(f"{p}.self_attn.qkv_proj.weight", (q + 2 * kv, h), "linear",
                  tuple(f"{p}.self_attn.{x}_proj.weight" for x in "qkv")),
            Param(f"{p}.self_attn.o_proj.weight", (h, q), "linear", (f"{p}.self_attn.o_proj.weight",)),
            Param(f"{p}.mlp.gate_up_proj.weight", (2 * inter, h), "linear",
                  (f"{p}.mlp.gate_proj.weight", f"{p}.mlp.up_proj.weight")),
            Param(f"{p}.mlp.down_proj.weight", (h, inter), "linear", (f"{p}.mlp.down_proj.weight",)),
            Param(f"{p}.input_layernorm.weight", (h,), "norm", (f"{p}.input_layernorm.weight",)),
            Param(f"{p}.post_attention_layernorm.weight", (h,), "norm",
                  (f"{p}.post_attention_layernorm.weight",)),
        ]
    out.append(Param("model.norm.weight", (h,), "norm", ("model.norm.weight",)))
    if not cfg["tie_word_embeddings"]:
        out.append(Param("lm_head.weight", (cfg["vocab_size"], h), "final_fc", ("lm_head.weight",)))
    return out


def hf_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Shapes of the Hugging Face tensors that params() reads."""
    h, hd = cfg["hidden_size"], cfg["head_dim"]
    q, kv, inter = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd, cfg["intermediate_size"]
    split = {"q_proj": (q, h), "k_proj": (kv, h), "v_proj": (kv, h), "gate_proj": (inter, h),
             "up_proj": (inter, h)}
    shapes = {}
    for p in params(cfg):
        if len(p.hf) == 1:
            shapes[p.hf[0]] = p.shape
        else:
            for name in p.hf:
                shapes[name] = split[name.rsplit(".", 2)[-2]]
    return shapes


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
