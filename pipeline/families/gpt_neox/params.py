"""The parameter spec of gpt_neox (Hugging Face's names, one tensor each)."""
from __future__ import annotations

from llmc.families.base import Param


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
