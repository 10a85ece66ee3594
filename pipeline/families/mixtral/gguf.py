"""llama.cpp writes Mixtral as a llama-architecture GGUF with stacked ffn_*_exps tensors: not read yet."""
from __future__ import annotations

from llmc.errors import NotAvailable

GGUF_NAMES: dict[str, str] = {}
GGUF_IGNORED: tuple[str, ...] = ()


def gguf_unpermute(cfg: dict) -> dict[str, int]:
    return {}


def gguf_config(meta: dict, arch: str) -> dict:
    raise NotAvailable("GGUF files of mixture-of-experts models (llama.cpp's stacked ffn_*_exps tensors) are not "
                       "read yet: convert from the Hugging Face folder")
