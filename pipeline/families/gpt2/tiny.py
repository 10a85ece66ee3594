"""Tiny random GPT-2 models (transformers' own class) for the parity tests."""
from __future__ import annotations

from pathlib import Path

from llmc.families.tiny import make_tokenizer, spread

# Shapes the parity tests compile at q0f32 and compare with transformers.
VARIANTS = {
    "gpt2-tiny": dict(),
    "gpt2-layer-scaled": dict(hidden=96, heads=3, scale_by_layer=True),
}


def make(path: Path, *, layers=2, hidden=64, heads=4, vocab=320, ctx=128, seed=0, scale_by_layer=False) -> Path:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, vocab_size=vocab, n_positions=ctx,
                     scale_attn_by_inverse_layer_idx=scale_by_layer)
    model = GPT2LMHeadModel(cfg)
    spread(model)
    model.save_pretrained(path)
    make_tokenizer(path, vocab)
    return path
