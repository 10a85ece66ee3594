"""The parameter spec of mixtral in MLC's names: llama's attention and norms, stacked experts and a float router."""
from __future__ import annotations

from llmc.families import experts
from llmc.families.base import Param
from llmc.families.llama.params import attention, dims, embedding, head, norms

HF_EXPERT = ("block_sparse_moe.experts.{e}.w1.weight", "block_sparse_moe.experts.{e}.w3.weight",
             "block_sparse_moe.experts.{e}.w2.weight")


def params(cfg: dict) -> list[Param]:
    h, hd, q, kv, inter = dims(cfg)
    e = cfg["num_local_experts"]
    out = [embedding(cfg)]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        out += attention(cfg, p) + [
            experts.router(f"{p}.moe.gate.weight", e, h, f"{p}.block_sparse_moe.gate.weight"),
            *experts.experts(p, (f"{p}.moe.e1_e3.weight", f"{p}.moe.e2.weight"), e, h, inter, HF_EXPERT),
            *norms(p, h),
        ]
    return out + head(cfg)


def hf_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    h, hd, q, kv, inter = dims(cfg)
    layers = range(cfg["num_hidden_layers"])
    dense = {f"model.layers.{i}.self_attn.{x}_proj.weight": (rows, h)
             for i in layers for x, rows in (("q", q), ("k", kv), ("v", kv))}
    return experts.hf_shapes(params(cfg), dense)
