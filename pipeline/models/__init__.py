"""Architectures llmc knows: config normalization and parameter specs, without TVM."""
from __future__ import annotations

from types import ModuleType

from ..errors import UserError
from . import gpt_neox, llama
from .base import Param

ARCHITECTURES: dict[str, ModuleType] = {t: m for m in (llama, gpt_neox) for t in m.MODEL_TYPES}
SUPPORTED = tuple(sorted(ARCHITECTURES))
# Hugging Face model_type values (and GGUF general.architecture) that map onto ours.
ALIASES = {"llama": "llama", "mistral": "mistral", "gpt_neox": "gpt_neox", "gptneox": "gpt_neox"}


def architecture(model_type: str) -> ModuleType:
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        raise UserError(f"unknown model type {model_type!r}; supported: {', '.join(SUPPORTED)}") from None


def detect(hf: dict, requested: str = "auto") -> str:
    if requested != "auto":
        architecture(requested)
        return requested
    found = hf.get("model_type")
    if found is None:
        raise UserError("config.json has no model_type; pass --model-type "
                        f"({', '.join(SUPPORTED)})")
    if found not in ALIASES:
        raise UserError(f"unknown model type {found!r}; supported: {', '.join(SUPPORTED)}")
    return ALIASES[found]


def model_config(hf: dict, model_type: str) -> dict:
    return architecture(model_type).normalize(hf, model_type)


def params(model_type: str, cfg: dict) -> list[Param]:
    return architecture(model_type).params(cfg)


__all__ = ["ARCHITECTURES", "Param", "SUPPORTED", "architecture", "detect", "model_config", "params"]
