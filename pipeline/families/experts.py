"""The parameters of a mixture-of-experts block, shared by the MoE families (mixtral, qwen_moe).

Experts are stacked as MLC stores them: one [E, 2 * inter, hidden] tensor of every expert's gate and up
rows (gate first, as transformers' own gate_up_proj), one [E, hidden, inter] of their down projections;
kind "experts" is group-quantized per row like a linear weight. The router stays float (kind "router").
"""
from __future__ import annotations

from llmc.errors import UserError
from llmc.families.base import Param, integer

# The router (compiler/topk.py) picks experts in CPU torch.topk's order. Where torch runs nth_element
# (k * 64 > experts), it then sorts the k - 1 best with std::sort, which is one insertion sort for at most
# 16 of them and an introsort llmc does not reproduce beyond. Models route to at most 8.
MAX_TOP_K = 17


def top_k_reproducible(num_experts: int, k: int) -> bool:
    return k <= MAX_TOP_K or k * 64 <= num_experts


def top_k(hf: dict, num_experts: int, model_type: str) -> int:
    """num_experts_per_tok, from 1 to the number of experts, and one whose order the router reproduces."""
    k = integer(hf, "num_experts_per_tok", model_type=model_type, high=num_experts)
    if not top_k_reproducible(num_experts, k):
        raise UserError(f"config value num_experts_per_tok={k} is not supported: the router follows torch.topk's "
                        f"order for at most {MAX_TOP_K} experts per token (or a top-k of at most 1/64 of the "
                        "experts)")
    return k


def experts(prefix: str, mlc: tuple[str, str], num_experts: int, hidden: int, inter: int,
            hf_names: tuple[str, str, str]) -> list[Param]:
    """mlc: the MLC names of the stacked gate/up and down tensors; hf_names: (gate, up, down) of one
    expert under prefix, {e} standing for its index."""
    gate, up, down = (f"{prefix}.{name}" for name in hf_names)
    return [
        Param(mlc[0], (num_experts, 2 * inter, hidden), "experts",
              tuple(n.format(e=e) for e in range(num_experts) for n in (gate, up))),
        Param(mlc[1], (num_experts, hidden, inter), "experts", tuple(down.format(e=e) for e in range(num_experts))),
    ]


def router(name: str, num_experts: int, hidden: int, hf: str) -> Param:
    return Param(name, (num_experts, hidden), "router", (hf,))


def hf_shapes(spec: list[Param], dense: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Shapes of the Hugging Face tensors behind spec: an expert's each is its slice of the stacked
    tensor; a fused dense parameter's come from dense (HF name -> shape), the others are the param's."""
    shapes = {}
    for p in spec:
        if p.kind == "experts":
            e, rows, k = p.shape
            per_expert = len(p.hf) // e
            for name in p.hf:
                shapes[name] = (rows // per_expert, k)
        elif len(p.hf) == 1:
            shapes[p.hf[0]] = p.shape
        else:
            shapes.update({name: dense[name] for name in p.hf})
    return shapes


def is_sparse(layer: int, cfg: dict) -> bool:
    """transformers' rule for qwen2_moe / qwen3_moe: a layer is a MoE block unless it is listed in
    mlp_only_layers or off the decoder_sparse_step grid (mixtral: every layer)."""
    return (layer not in cfg.get("mlp_only_layers", [])
            and (layer + 1) % cfg.get("decoder_sparse_step", 1) == 0)


def gguf_config(meta: dict, arch: str, renormalized: bool) -> dict:
    """The experts' Hugging Face config fields from a GGUF's metadata. llama.cpp's graph fixes whether an
    architecture renormalizes the top-k weights (expert_weights_norm, when written, says so)."""
    def get(key, default=None):
        return meta.get(f"{arch}.{key}", default)

    out = {"num_experts": get("expert_count"), "num_experts_per_tok": get("expert_used_count"),
           "norm_topk_prob": bool(get("expert_weights_norm", renormalized))}
    if get("expert_feed_forward_length") is not None:
        out["moe_intermediate_size"] = get("expert_feed_forward_length")
    if get("expert_shared_feed_forward_length") is not None:
        out["shared_expert_intermediate_size"] = get("expert_shared_feed_forward_length")
    return out
