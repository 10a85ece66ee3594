"""Tiny random GPT-NeoX models (transformers' own class) for the parity tests."""
from __future__ import annotations

from pathlib import Path

from llmc.families.tiny import make_tokenizer, spread

# Shapes the parity tests compile at q0f32 and compare with transformers.
VARIANTS = {
    "neox-parallel": dict(parallel=True, rotary_pct=0.5),
    "neox-serial": dict(parallel=False, rotary_pct=0.25),
}


def make(path: Path, *, parallel=True, rotary_pct=0.5, layers=2, hidden=64, heads=4, inter=128,
         vocab=320, ctx=128, seed=0) -> Path:
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(hidden_size=hidden, intermediate_size=inter, num_attention_heads=heads,
                        num_hidden_layers=layers, vocab_size=vocab, max_position_embeddings=ctx,
                        use_parallel_residual=parallel, rotary_pct=rotary_pct)
    model = GPTNeoXForCausalLM(cfg)
    spread(model)
    model.save_pretrained(path)
    make_tokenizer(path, vocab)
    return path
