"""Tiny random Hugging Face models, made with transformers at test time (each family's tiny.py)."""
from __future__ import annotations

import sys
from pathlib import Path

from llmc.families.gpt_neox.tiny import make as make_neox
from llmc.families.llama.tiny import make as make_llama
from llmc.families.tiny import CHATML_TEMPLATE, SPECIALS, make_tokenizer

__all__ = ["CHATML_TEMPLATE", "SPECIALS", "make_llama", "make_neox", "make_tokenizer", "smollm2_gguf"]


def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct GGUF (scripts/fetch_smollm2.py finds or fetches it)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from fetch_smollm2 import smollm2_gguf as fetch

    return fetch()
