"""The parameter spec of phi3: llama's names; the checkpoint already fuses qkv_proj and gate_up_proj."""
from __future__ import annotations

from llmc.families.base import Param


def params(cfg: dict) -> list[Param]:
    h, hd = cfg["hidden_size"], cfg["head_dim"]
    q, kv, inter = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd, cfg["intermediate_size"]
    out = [Param("model.embed_tokens.weight", (cfg["vocab_size"], h), "embedding", ("model.embed_tokens.weight",))]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        out += [Param(f"{p}.{name}.weight", shape, kind, (f"{p}.{name}.weight",)) for name, shape, kind in (
            ("self_attn.qkv_proj", (q + 2 * kv, h), "linear"), ("self_attn.o_proj", (h, q), "linear"),
            ("mlp.gate_up_proj", (2 * inter, h), "linear"), ("mlp.down_proj", (h, inter), "linear"),
            ("input_layernorm", (h,), "norm"), ("post_attention_layernorm", (h,), "norm"))]
    out.append(Param("model.norm.weight", (h,), "norm", ("model.norm.weight",)))
    if not cfg["tie_word_embeddings"]:
        out.append(Param("lm_head.weight", (cfg["vocab_size"], h), "final_fc", ("lm_head.weight",)))
    return out


def hf_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    return {p.hf[0]: p.shape for p in params(cfg)}
