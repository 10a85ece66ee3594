"""The model families llmc knows. FAMILIES is the one list: everything else derives from it.

A family is a package here with, at module level: MODEL_TYPES (our model_type values), ALIASES (Hugging
Face model_type / GGUF general.architecture -> ours), PRESETS, normalize(hf, model_type), params(cfg),
hf_shapes(cfg), GGUF_NAMES, GGUF_IGNORED, gguf_unpermute(cfg), gguf_config(meta, arch); and submodules
nn (the TVM module, imported at lower time only) and tiny (test models and the VARIANTS the parity tests
compile). Optional: CPU_ONLY (why its libraries need llmc's CPU kernels), gguf_to_hf / gguf_from_hf (how
llama.cpp's stored values differ from the checkpoint's). Adding a family is one folder plus one line below.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from llmc.errors import UserError
from llmc.families import gemma, gpt2, gpt_neox, llama, mixtral, phi3, qwen, qwen_moe
from llmc.families.base import Param

FAMILIES: tuple[ModuleType, ...] = (llama, gpt_neox, qwen, gpt2, gemma, phi3, mixtral, qwen_moe)

ARCHITECTURES: dict[str, ModuleType] = {t: f for f in FAMILIES for t in f.MODEL_TYPES}
SUPPORTED = tuple(sorted(ARCHITECTURES))
ALIASES: dict[str, str] = {alias: t for f in FAMILIES for alias, t in f.ALIASES.items()}
PRESETS: dict[str, dict] = {name: cfg for f in FAMILIES for name, cfg in f.PRESETS.items()}


def architecture(model_type: str) -> ModuleType:
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        raise UserError(f"unknown model type {model_type!r}; supported: {', '.join(SUPPORTED)}") from None


def nn_module(model_type: str) -> ModuleType:
    """The family's TVM definition (imports TVM: lower only)."""
    return importlib.import_module(f"{architecture(model_type).__name__}.nn")


def tiny_module(family: ModuleType) -> ModuleType:
    """The family's test-model maker (needs the test extra: torch, transformers)."""
    return importlib.import_module(f"{family.__name__}.tiny")


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


def cpu_only(model_type: str) -> str | None:
    """Why a family compiles for the CPU only (a family's CPU_ONLY), or None."""
    return getattr(architecture(model_type), "CPU_ONLY", None)


def model_config(hf: dict, model_type: str) -> dict:
    return architecture(model_type).normalize(hf, model_type)


def params(model_type: str, cfg: dict) -> list[Param]:
    return architecture(model_type).params(cfg)


__all__ = ["ALIASES", "ARCHITECTURES", "FAMILIES", "PRESETS", "Param", "SUPPORTED", "architecture", "cpu_only", "detect",
           "model_config", "nn_module", "params", "tiny_module"]
