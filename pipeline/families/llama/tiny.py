"""Tiny random llama and mistral models (transformers' own classes) for the parity tests."""
from __future__ import annotations

from pathlib import Path

from llmc.families.tiny import make_tokenizer, spread

# Shapes the parity tests compile at q0f32 and compare with transformers.
VARIANTS = {
    "llama-gqa-untied": dict(tied=False, kv_heads=2),
    "llama-tied-mha": dict(tied=True, kv_heads=4),
    "mistral-window": dict(model_type="mistral", sliding_window=16),
}


def make(path: Path, *, tied=False, kv_heads=2, model_type="llama", sliding_window=None, layers=2,
         hidden=64, heads=4, inter=128, vocab=320, ctx=128, seed=0, dtype="float32", **extra) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    torch.manual_seed(seed)
    if model_type == "mistral":
        cfg = MistralConfig(hidden_size=hidden, intermediate_size=inter, num_attention_heads=heads,
                            num_key_value_heads=kv_heads, num_hidden_layers=layers, vocab_size=vocab,
                            max_position_embeddings=ctx, sliding_window=sliding_window,
                            tie_word_embeddings=tied, **extra)
        model = MistralForCausalLM(cfg)
    else:
        cfg = LlamaConfig(hidden_size=hidden, intermediate_size=inter, num_attention_heads=heads,
                          num_key_value_heads=kv_heads, num_hidden_layers=layers, vocab_size=vocab,
                          max_position_embeddings=ctx, tie_word_embeddings=tied, **extra)
        model = LlamaForCausalLM(cfg)
    spread(model)
    model = model.to(getattr(torch, dtype))
    model.save_pretrained(path)
    make_tokenizer(path, vocab)
    return path
