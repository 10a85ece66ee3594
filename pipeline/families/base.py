"""What every architecture module provides, and helpers for reading HF configs."""
from __future__ import annotations

from dataclasses import dataclass

from llmc.errors import UserError


@dataclass(frozen=True)
class Param:
    """One float parameter of the model, in MLC's naming, before quantization.

    kind decides how a quantization scheme treats it: "linear", "final_fc" and
    "embedding" are quantized; "norm" and "bias" stay float.
    hf lists the Hugging Face tensors concatenated (axis 0) into this one.
    """
    name: str
    shape: tuple[int, ...]
    kind: str
    hf: tuple[str, ...]
    dtype: str | None = None  # a fixed dtype; None means the scheme's model dtype


def require(hf: dict, *names: str, model_type: str):
    for name in names:
        if hf.get(name) is not None:
            return hf[name]
    raise UserError(f"config.json of this {model_type} model has no {' / '.join(names)}")


def positive(cfg: dict, *names: str) -> None:
    for name in names:
        value = cfg[name]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise UserError(f"config value {name}={value!r} must be a positive integer")


def rope_parameters(hf: dict) -> dict:
    """transformers 5's rope_parameters, or the older rope_theta / rope_scaling / rotary_pct fields."""
    params = dict(hf.get("rope_parameters") or {})
    scaling = hf.get("rope_scaling")
    if isinstance(scaling, dict):
        for k, v in scaling.items():
            params.setdefault(k, v)
        if "type" in scaling and "rope_type" not in params:
            params["rope_type"] = scaling["type"]
    for old, new in (("rope_theta", "rope_theta"), ("rotary_emb_base", "rope_theta"),
                     ("rotary_pct", "partial_rotary_factor"),
                     ("partial_rotary_factor", "partial_rotary_factor")):
        if hf.get(old) is not None:
            params.setdefault(new, hf[old])
    return params


def context_window(hf: dict, model_type: str) -> int:
    for name in ("context_window_size", "max_position_embeddings", "max_sequence_length"):
        if hf.get(name):
            return int(hf[name])
    raise UserError(f"config.json of this {model_type} model has none of context_window_size, "
                    "max_position_embeddings, max_sequence_length")


def number(value):
    """A config number as an int when it is whole (how MLC's configs spell rope_theta)."""
    value = float(value)
    return int(value) if value.is_integer() else value
