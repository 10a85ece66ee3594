"""Tiny random qwen2 and qwen3 models (transformers' own classes) for the parity tests."""
from __future__ import annotations

from pathlib import Path

from llmc.families.tiny import make_tokenizer, spread

# Shapes the parity tests compile at q0f32 and compare with transformers: qwen2's qkv bias with a tied
# head and 3 query heads per KV head; qwen3's q/k norms with a head_dim unlike hidden/heads, and with bias.
VARIANTS = {
    "qwen2-bias-tied": dict(model_type="qwen2", tied=True, heads=6, kv_heads=2, hidden=96),
    "qwen3-qknorm": dict(model_type="qwen3", head_dim=32),
    "qwen3-bias": dict(model_type="qwen3", attention_bias=True, tied=True),
}


def make(path: Path, *, model_type="qwen2", tied=False, kv_heads=2, heads=4, hidden=64, head_dim=None, layers=2,
         inter=128, vocab=320, ctx=128, seed=0, attention_bias=False) -> Path:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    common = dict(hidden_size=hidden, intermediate_size=inter, num_attention_heads=heads, num_key_value_heads=kv_heads,
                  num_hidden_layers=layers, vocab_size=vocab, max_position_embeddings=ctx, tie_word_embeddings=tied)
    if model_type == "qwen3":
        cfg = Qwen3Config(head_dim=head_dim or hidden // heads, attention_bias=attention_bias, **common)
        model = Qwen3ForCausalLM(cfg)
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    spread(model)
    model.save_pretrained(path)
    make_tokenizer(path, vocab)
    return path
