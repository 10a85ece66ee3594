"""MLC's model_config for qwen2_moe and qwen3_moe: qwen2's / qwen3's fields and the experts', from a Hugging
Face config."""
from __future__ import annotations

from llmc.errors import UserError
from llmc.families.experts import top_k as experts_top_k
from llmc.families.base import flag, integer, positive
from llmc.families.qwen.config import normalize as qwen_normalize


def normalize(hf: dict, model_type: str = "qwen2_moe") -> dict:
    if model_type == "qwen2_moe" and not flag(hf, "qkv_bias", True):
        raise UserError("qwen2_moe with qkv_bias false is not supported")
    cfg = qwen_normalize(hf, "qwen3" if model_type == "qwen3_moe" else "qwen2")
    experts = integer(hf, "num_experts", "num_local_experts", model_type=model_type)
    cfg.update({
        "num_experts": experts,
        "num_experts_per_tok": experts_top_k(hf, experts, model_type),
        "moe_intermediate_size": integer(hf, "moe_intermediate_size", model_type=model_type),
        "norm_topk_prob": flag(hf, "norm_topk_prob", False),
        "decoder_sparse_step": integer(hf, "decoder_sparse_step", default=1),
        "mlp_only_layers": _layers(hf.get("mlp_only_layers") or [], cfg["num_hidden_layers"]),
    })
    if model_type == "qwen2_moe":
        cfg["shared_expert_intermediate_size"] = integer(hf, "shared_expert_intermediate_size",
                                                         model_type=model_type)
    positive(cfg, "moe_intermediate_size")
    return cfg


def _layers(value, count: int) -> list[int]:
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        raise UserError(f"config value mlp_only_layers={value!r} must be a list of layer indices")
    return sorted({v for v in value if 0 <= v < count})
