"""The parameter spec of qwen2 and qwen3 in MLC's names (c_attn fuses q/k/v and their biases)."""
from __future__ import annotations

from llmc.families.base import Param
from llmc.families.llama.params import mlp_and_norms
from llmc.families.qwen.config import qk_norm, qkv_bias


def params(cfg: dict) -> list[Param]:
    h, hd = cfg["hidden_size"], cfg["head_dim"]
    q, kv, inter = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd, cfg["intermediate_size"]
    out = [Param("model.embed_tokens.weight", (cfg["vocab_size"], h), "embedding", ("model.embed_tokens.weight",))]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        attn = f"{p}.self_attn"
        out.append(Param(f"{attn}.c_attn.weight", (q + 2 * kv, h), "linear",
                         tuple(f"{attn}.{x}_proj.weight" for x in "qkv")))
        if qkv_bias(cfg):
            out.append(Param(f"{attn}.c_attn.bias", (q + 2 * kv,), "bias", tuple(f"{attn}.{x}_proj.bias" for x in "qkv")))
        out.append(Param(f"{attn}.o_proj.weight", (h, q), "linear", (f"{attn}.o_proj.weight",)))
        if cfg.get("attention_bias"):
            out.append(Param(f"{attn}.o_proj.bias", (h,), "bias", (f"{attn}.o_proj.bias",)))
        if qk_norm(cfg):
            out += [Param(f"{attn}.q_norm.weight", (hd,), "norm", (f"{attn}.q_norm.weight",)),
                    Param(f"{attn}.k_norm.weight", (hd,), "norm", (f"{attn}.k_norm.weight",))]
        out += mlp_and_norms(p, h, inter)
    out.append(Param("model.norm.weight", (h,), "norm", ("model.norm.weight",)))
    if not cfg["tie_word_embeddings"]:
        out.append(Param("lm_head.weight", (cfg["vocab_size"], h), "final_fc", ("lm_head.weight",)))
    return out


def hf_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Shapes of the Hugging Face tensors that params() reads."""
    h, hd = cfg["hidden_size"], cfg["head_dim"]
    q, kv, inter = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd, cfg["intermediate_size"]
    rows = {"q_proj": q, "k_proj": kv, "v_proj": kv, "gate_proj": inter, "up_proj": inter}
    shapes = {}
    for p in params(cfg):
        if len(p.hf) == 1:
            shapes[p.hf[0]] = p.shape
            continue
        for name in p.hf:
            module = name.rsplit(".", 2)[-2]
            shapes[name] = (rows[module], h) if name.endswith(".weight") else (rows[module],)
    return shapes
