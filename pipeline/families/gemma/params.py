"""The parameter spec of gemma2 and gemma3 in MLC's names: fused qkv_proj and gate_up_proj, four norms per
layer, q_norm/k_norm for gemma3. Norm weights are stored as checkpoints hold them (w, used as 1 + w)."""
from __future__ import annotations

from llmc.families.base import Param
from llmc.families.llama.params import hf_shapes as llama_hf_shapes
from llmc.families.llama.params import mlp_and_norms

FEEDFORWARD_NORMS = ("pre_feedforward_layernorm", "post_feedforward_layernorm")


def params(cfg: dict) -> list[Param]:
    h, hd = cfg["hidden_size"], cfg["head_dim"]
    q, kv, inter = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd, cfg["intermediate_size"]
    out = [Param("model.embed_tokens.weight", (cfg["vocab_size"], h), "embedding", ("model.embed_tokens.weight",))]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        attn = f"{p}.self_attn"
        out += [Param(f"{attn}.qkv_proj.weight", (q + 2 * kv, h), "linear",
                      tuple(f"{attn}.{x}_proj.weight" for x in "qkv")),
                Param(f"{attn}.o_proj.weight", (h, q), "linear", (f"{attn}.o_proj.weight",))]
        if cfg.get("qk_norm"):
            out += [Param(f"{attn}.{n}.weight", (hd,), "norm", (f"{attn}.{n}.weight",)) for n in ("q_norm", "k_norm")]
        out += mlp_and_norms(p, h, inter)
        out += [Param(f"{p}.{n}.weight", (h,), "norm", (f"{p}.{n}.weight",)) for n in FEEDFORWARD_NORMS]
    out.append(Param("model.norm.weight", (h,), "norm", ("model.norm.weight",)))
    if not cfg["tie_word_embeddings"]:
        out.append(Param("lm_head.weight", (cfg["vocab_size"], h), "final_fc", ("lm_head.weight",)))
    return out


def hf_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    return llama_hf_shapes(cfg, params(cfg))
