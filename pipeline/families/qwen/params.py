"""The parameter spec of qwen2 and qwen3 in MLC's names (c_attn fuses q/k/v and their biases)."""
from __future__ import annotations

from llmc.families.base import Param
from llmc.families.llama.params import dims, embedding, head, mlp_and_norms
from llmc.families.qwen.config import qk_norm, qkv_bias


def params(cfg: dict) -> list[Param]:
    h, hd, q, kv, inter = dims(cfg)
    out = [embedding(cfg)]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        out += attention(cfg, p) + mlp_and_norms(p, h, inter)
    return out + head(cfg)


def attention(cfg: dict, p: str) -> list[Param]:
    """Layer p's attention: fused q/k/v (and their bias), o_proj, qwen3's q/k norms."""
    h, hd, q, kv, _ = dims(cfg)
    attn = f"{p}.self_attn"
    out = [Param(f"{attn}.c_attn.weight", (q + 2 * kv, h), "linear", tuple(f"{attn}.{x}_proj.weight" for x in "qkv"))]
    if qkv_bias(cfg):
        out.append(Param(f"{attn}.c_attn.bias", (q + 2 * kv,), "bias", tuple(f"{attn}.{x}_proj.bias" for x in "qkv")))
    out.append(Param(f"{attn}.o_proj.weight", (h, q), "linear", (f"{attn}.o_proj.weight",)))
    if cfg.get("attention_bias"):
        out.append(Param(f"{attn}.o_proj.bias", (h,), "bias", (f"{attn}.o_proj.bias",)))
    if qk_norm(cfg):
        out += [Param(f"{attn}.q_norm.weight", (hd,), "norm", (f"{attn}.q_norm.weight",)),
                Param(f"{attn}.k_norm.weight", (hd,), "norm", (f"{attn}.k_norm.weight",))]
    return out


def hf_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Shapes of the Hugging Face tensors that params() reads."""
    h, hd, q, kv, inter = dims(cfg)
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
