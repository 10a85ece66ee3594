"""The parameter spec of qwen2_moe and qwen3_moe in MLC's names: qwen's attention, then per layer a sparse block
(float router, stacked experts, qwen2_moe's shared expert and its gate) or a dense MLP, and the norms."""
from __future__ import annotations

from llmc.families import experts
from llmc.families.base import Param
from llmc.families.llama.params import dims, embedding, head, mlp_and_norms, norms
from llmc.families.qwen.params import attention

HF_EXPERT = ("mlp.experts.{e}.gate_proj.weight", "mlp.experts.{e}.up_proj.weight", "mlp.experts.{e}.down_proj.weight")


def params(cfg: dict) -> list[Param]:
    h, _, _, _, inter = dims(cfg)
    out = [embedding(cfg)]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        out += attention(cfg, p)
        out += sparse_block(cfg, p) + norms(p, h) if experts.is_sparse(i, cfg) else mlp_and_norms(p, h, inter)
    return out + head(cfg)


def sparse_block(cfg: dict, p: str) -> list[Param]:
    h, e = cfg["hidden_size"], cfg["num_experts"]
    out = [experts.router(f"{p}.mlp.gate.weight", e, h, f"{p}.mlp.gate.weight"),
           *experts.experts(p, (f"{p}.mlp.moe_gate_up_proj.weight", f"{p}.mlp.moe_down_proj.weight"), e, h,
                            cfg["moe_intermediate_size"], HF_EXPERT)]
    if "shared_expert_intermediate_size" in cfg:
        inter, se = cfg["shared_expert_intermediate_size"], f"{p}.mlp.shared_expert"
        out += [Param(f"{se}.gate_up_proj.weight", (2 * inter, h), "linear",
                      (f"{se}.gate_proj.weight", f"{se}.up_proj.weight")),
                Param(f"{se}.down_proj.weight", (h, inter), "linear", (f"{se}.down_proj.weight",)),
                experts.router(f"{p}.mlp.shared_expert_gate.weight", 1, h, f"{p}.mlp.shared_expert_gate.weight")]
    return out


def hf_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    h, _, q, kv, inter = dims(cfg)
    shared = cfg.get("shared_expert_intermediate_size", 0)
    dense = {}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        dense.update({f"{p}.self_attn.{x}_proj.{kind}": (rows, h) if kind == "weight" else (rows,)
                      for x, rows in (("q", q), ("k", kv), ("v", kv)) for kind in ("weight", "bias")})
        dense.update({f"{p}.mlp.{x}_proj.weight": (inter, h) for x in ("gate", "up")})
        dense.update({f"{p}.mlp.shared_expert.{x}_proj.weight": (shared, h) for x in ("gate", "up")})
    return experts.hf_shapes(params(cfg), dense)
