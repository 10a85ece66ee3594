"""The parameter spec of llama and mistral: MLC's names and shapes, and the Hugging Face tensors behind them."""
from __future__ import annotations

from llmc.families.base import Param


def dims(cfg: dict) -> tuple[int, int, int, int, int]:
    """(hidden, head_dim, q rows, k/v rows, intermediate) of a llama-like config."""
    h, hd = cfg["hidden_size"], cfg["head_dim"]
    return h, hd, cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd, cfg["intermediate_size"]


def embedding(cfg: dict) -> Param:
    return Param("model.embed_tokens.weight", (cfg["vocab_size"], cfg["hidden_size"]), "embedding",
                 ("model.embed_tokens.weight",))


def head(cfg: dict) -> list[Param]:
    """The final norm, and the output layer unless it is the embedding."""
    h = cfg["hidden_size"]
    out = [Param("model.norm.weight", (h,), "norm", ("model.norm.weight",))]
    if not cfg["tie_word_embeddings"]:
        out.append(Param("lm_head.weight", (cfg["vocab_size"], h), "final_fc", ("lm_head.weight",)))
    return out


def params(cfg: dict) -> list[Param]:
    h, hd, q, kv, inter = dims(cfg)
    out = [embedding(cfg)]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        out += attention(cfg, p) + mlp_and_norms(p, h, inter)
    return out + head(cfg)


def attention(cfg: dict, p: str) -> list[Param]:
    """Layer p's attention: q/k/v fused, and o_proj."""
    h, _, q, kv, _ = dims(cfg)
    return [Param(f"{p}.self_attn.qkv_proj.weight", (q + 2 * kv, h), "linear",
                  tuple(f"{p}.self_attn.{x}_proj.weight" for x in "qkv")),
            Param(f"{p}.self_attn.o_proj.weight", (h, q), "linear", (f"{p}.self_attn.o_proj.weight",))]


def mlp_and_norms(p: str, h: int, inter: int) -> list[Param]:
    """Layer p's gated MLP (gate and up fused) and its two RMSNorms, as llama and its kin store them."""
    return [
        Param(f"{p}.mlp.gate_up_proj.weight", (2 * inter, h), "linear",
              (f"{p}.mlp.gate_proj.weight", f"{p}.mlp.up_proj.weight")),
        Param(f"{p}.mlp.down_proj.weight", (h, inter), "linear", (f"{p}.mlp.down_proj.weight",)),
        *norms(p, h),
    ]


def norms(p: str, h: int) -> list[Param]:
    """Layer p's RMSNorms before attention and before the MLP."""
    return [Param(f"{p}.{n}.weight", (h,), "norm", (f"{p}.{n}.weight",))
            for n in ("input_layernorm", "post_attention_layernorm")]


def hf_shapes(cfg: dict, spec: list[Param] | None = None) -> dict[str, tuple[int, ...]]:
    """Shapes of the Hugging Face tensors that params() (or a kin family's spec) reads."""
    h, hd, q, kv, inter = dims(cfg)
    split = {"q_proj": (q, h), "k_proj": (kv, h), "v_proj": (kv, h), "gate_proj": (inter, h),
             "up_proj": (inter, h)}
    shapes = {}
    for p in spec if spec is not None else params(cfg):
        if len(p.hf) == 1:
            shapes[p.hf[0]] = p.shape
        else:
            for name in p.hf:
                shapes[name] = split[name.rsplit(".", 2)[-2]]
    return shapes
