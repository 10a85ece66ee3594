"""The parameter spec of gpt2 in MLC's names (Hugging Face's), Conv1D weights transposed to [out, in]."""
from __future__ import annotations

from llmc.families.base import Param


def params(cfg: dict) -> list[Param]:
    h, inner = cfg["n_embd"], cfg["n_inner"]
    t = "transformer"
    out = [Param(f"{t}.wte.weight", (cfg["vocab_size"], h), "embedding", (f"{t}.wte.weight",)),
           Param(f"{t}.wpe.weight", (cfg["context_window_size"], h), "position", (f"{t}.wpe.weight",))]
    for i in range(cfg["n_layer"]):
        p = f"{t}.h.{i}"
        out += [
            Param(f"{p}.ln_1.weight", (h,), "norm", (f"{p}.ln_1.weight",)),
            Param(f"{p}.ln_1.bias", (h,), "norm", (f"{p}.ln_1.bias",)),
            Param(f"{p}.attn.c_attn.weight", (3 * h, h), "linear", (f"{p}.attn.c_attn.weight",), transposed=True),
            Param(f"{p}.attn.c_attn.bias", (3 * h,), "bias", (f"{p}.attn.c_attn.bias",)),
            Param(f"{p}.attn.c_proj.weight", (h, h), "linear", (f"{p}.attn.c_proj.weight",), transposed=True),
            Param(f"{p}.attn.c_proj.bias", (h,), "bias", (f"{p}.attn.c_proj.bias",)),
            Param(f"{p}.ln_2.weight", (h,), "norm", (f"{p}.ln_2.weight",)),
            Param(f"{p}.ln_2.bias", (h,), "norm", (f"{p}.ln_2.bias",)),
            Param(f"{p}.mlp.c_fc.weight", (inner, h), "linear", (f"{p}.mlp.c_fc.weight",), transposed=True),
            Param(f"{p}.mlp.c_fc.bias", (inner,), "bias", (f"{p}.mlp.c_fc.bias",)),
            Param(f"{p}.mlp.c_proj.weight", (h, inner), "linear", (f"{p}.mlp.c_proj.weight",), transposed=True),
            Param(f"{p}.mlp.c_proj.bias", (h,), "bias", (f"{p}.mlp.c_proj.bias",)),
        ]
    out += [Param(f"{t}.ln_f.weight", (h,), "norm", (f"{t}.ln_f.weight",)),
            Param(f"{t}.ln_f.bias", (h,), "norm", (f"{t}.ln_f.bias",))]
    return out


def hf_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Shapes of the Hugging Face tensors that params() reads (Conv1D weights are [in, out] there)."""
    return {p.hf[0]: tuple(reversed(p.shape)) if p.transposed else p.shape for p in params(cfg)}
