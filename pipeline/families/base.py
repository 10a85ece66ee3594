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
    transposed: bool = False  # the source stores it [in, out] (GPT-2's Conv1D): transposed when read


# The longest context a config may ask for (16M tokens; today's longest models have 10M).
MAX_CONTEXT = 1 << 24
_MISSING = object()


def _first(hf: dict, names: tuple[str, ...], default, model_type: str):
    for name in names:
        if hf.get(name) is not None:
            return name, hf[name]
    if default is _MISSING:
        raise UserError(f"config.json of this {model_type} model has no {' / '.join(names)}")
    return names[0], default


def integer(hf: dict, *names: str, model_type: str = "", default=_MISSING, low: int = 1,
            high: int | None = None) -> int:
    """A whole-number config field (1.0 counts, "8" and true do not), within [low, high]."""
    name, value = _first(hf, names, default, model_type)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"config value {name}={value!r} must be an integer")
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise UserError(f"config value {name}={value} must be {bound}")
    return value


def real(hf: dict, name: str, default: float, positive: bool = True) -> float:
    value = hf.get(name)
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise UserError(f"config value {name}={value!r} must be a number")
    if positive and value <= 0:
        raise UserError(f"config value {name}={value} must be positive")
    return float(value)


def flag(hf: dict, name: str, default: bool) -> bool:
    """true or false only: the string "false" is not a false value."""
    value = hf.get(name, default)
    value = default if value is None else value
    if not isinstance(value, bool):
        raise UserError(f"config value {name}={value!r} must be true or false")
    return value


def require(hf: dict, *names: str, model_type: str):
    return integer(hf, *names, model_type=model_type)


def positive(cfg: dict, *names: str) -> None:
    for name in names:
        value = cfg[name]
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise UserError(f"config value {name}={value!r} must be a positive integer")


def rope_parameters(hf: dict) -> dict:
    """transformers 5's rope_parameters, or the older rope_theta / rope_scaling / rotary_pct fields."""
    for name in ("rope_parameters", "rope_scaling"):
        if hf.get(name) is not None and not isinstance(hf[name], dict):
            raise UserError(f"config value {name}={hf[name]!r} must be an object")
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
    return integer(hf, "context_window_size", "max_position_embeddings", "max_sequence_length",
                   model_type=model_type, high=MAX_CONTEXT)


def number(value, name: str = "rope_theta"):
    """A positive config number in the source's own type: MLC copies rope_theta as it reads it, so
    500000.0 stays a float and 10000 an int."""
    checked = real({name: value}, name, 0.0)
    return value if isinstance(value, int) else checked


def hidden_size(cfg: dict) -> int:
    """The model width under the name each family's MLC config uses (gpt2: n_embd)."""
    return cfg["hidden_size"] if "hidden_size" in cfg else cfg["n_embd"]


def num_layers(cfg: dict) -> int:
    return cfg["num_hidden_layers"] if "num_hidden_layers" in cfg else cfg["n_layer"]
