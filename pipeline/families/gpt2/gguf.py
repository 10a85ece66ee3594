"""GPT-2 GGUF files: not read yet (llama.cpp stores the Conv1D weights transposed to [out, in] under
its own names); a clear error rather than a wrong model."""
from __future__ import annotations

from llmc.errors import NotAvailable

GGUF_NAMES: dict[str, str] = {}
GGUF_IGNORED: tuple[str, ...] = ()


def gguf_unpermute(cfg: dict) -> dict[str, int]:
    return {}


def gguf_config(meta: dict, arch: str) -> dict:
    raise NotAvailable("reading gpt2 GGUF files is not supported yet; convert from the Hugging Face folder")
