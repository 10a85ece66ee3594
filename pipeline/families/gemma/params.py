"""The parameter spec of gemma2 and gemma3 in MLC's names: fused qkv_proj and gate_up_proj, four norms per
layer, q_norm/k_norm for gemma3. Norm weights are stored as checkpoints hold them (w, used as 1 + w)."""
from __future__ import annotations

from dataclasses import replace

from llmc.families.base import Param
from llmc.families.llama.params import hf_shapes as llama_hf_shapes
from llmc.families.llama.params import dims, embedding, head, mlp_and_norms

FEEDFORWARD_NORMS = ("pre_feedforward_layernorm", "post_feedforward_layernorm")


def params(cfg: dict) -> list[Param]:
    h, hd, q, kv, inter = dims(cfg)
    out = [embedding(cfg)]
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
    out += head(cfg)
    prefix = cfg.get("weight_prefix", "")
    return [replace(p, hf=tuple(prefix + n for n in p.hf)) for p in out] if prefix else out


def hf_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    return llama_hf_shapes(cfg, params(cfg))
