"""Tiny random mixtral models (transformers' own classes) for the parity tests."""
from __future__ import annotations

from pathlib import Path

from llmc.families.tiny import make_tokenizer, spread

# 4 experts, top-2 renormalized (Mixtral's routing) with GQA; top-1 (renormalized to weight 1).
VARIANTS = {
    "mixtral-top2": dict(experts=4, top_k=2),
    "mixtral-top1-window": dict(experts=3, top_k=1, sliding_window=16),
}


def make(path: Path, *, experts=4, top_k=2, sliding_window=None, layers=2, hidden=64, heads=4, kv_heads=2,
         inter=96, vocab=320, ctx=128, seed=0, tied=False) -> Path:
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM

    torch.manual_seed(seed)
    cfg = MixtralConfig(hidden_size=hidden, intermediate_size=inter, num_attention_heads=heads,
                        num_key_value_heads=kv_heads, num_hidden_layers=layers, vocab_size=vocab,
                        max_position_embeddings=ctx, num_local_experts=experts, num_experts_per_tok=top_k,
                        sliding_window=sliding_window, tie_word_embeddings=tied)
    model = MixtralForCausalLM(cfg)
    spread(model)
    model.save_pretrained(path)
    make_tokenizer(path, vocab)
    return path
