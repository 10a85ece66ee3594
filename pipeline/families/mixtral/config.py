"""MLC's model_config for mixtral (its MixtralConfig: llama's fields and the experts'), from a Hugging Face config."""
from __future__ import annotations

from llmc.errors import UserError
from llmc.families.experts import top_k as experts_top_k
from llmc.families.base import integer
from llmc.families.llama.config import normalize as llama_normalize


def normalize(hf: dict, model_type: str = "mixtral") -> dict:
    act = hf.get("hidden_act", "silu")
    if act != "silu":
        raise UserError(f"{model_type} activation {act!r} is not supported (supported: silu)")
    cfg = llama_normalize(hf, model_type)
    experts = integer(hf, "num_local_experts", "num_experts", model_type=model_type)
    cfg.update({
        "num_local_experts": experts,
        "num_experts_per_tok": experts_top_k(hf, experts, model_type),
    })
    return cfg


def moe(cfg: dict) -> dict:
    """The sparse block's shape in the names compiler.moe reads."""
    return {"hidden_size": cfg["hidden_size"], "moe_intermediate_size": cfg["intermediate_size"],
            "num_experts": cfg["num_local_experts"], "num_experts_per_tok": cfg["num_experts_per_tok"],
            "norm_topk_prob": True}
