"""The parameter spec of phi3: llama's names; the checkpoint already fuses qkv_proj and gate_up_proj."""
from __future__ import annotations

from llmc.families.base import Param
from llmc.families.llama.params import dims, embedding, head


def params(cfg: dict) -> list[Param]:
    h, hd, q, kv, inter = dims(cfg)
    out = [embedding(cfg)]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        out += [Param(f"{p}.{name}.weight", shape, kind, (f"{p}.{name}.weight",)) for name, shape, kind in (
            ("self_attn.qkv_proj", (q + 2 * kv, h), "linear"), ("self_attn.o_proj", (h, q), "linear"),
            ("mlp.gate_up_proj", (2 * inter, h), "linear"), ("mlp.down_proj", (h, inter), "linear"),
            ("input_layernorm", (h,), "norm"), ("post_attention_layernorm", (h,), "norm"))]
    return out + head(cfg)


def hf_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    return {p.hf[0]: p.shape for p in params(cfg)}
