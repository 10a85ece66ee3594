"""Tiny random phi3 models (transformers' own class) for the parity tests."""
from __future__ import annotations

from pathlib import Path

from llmc.families.tiny import make_tokenizer, spread

# LongRoPE with random factors and a partial rotary of 3/4: an original length of 64 (of 256: attention
# factor sqrt(1 + ln 4 / ln 64)) that the parity prompt stays under (short factors), and one of 16 that it
# passes (long factors everywhere); a plain phi3 with GQA and an untied head.
VARIANTS = {
    "phi3-longrope-partial": dict(longrope=True, partial=0.75),
    "phi3-longrope-past-original": dict(longrope=True, partial=0.75, original=16),
    "phi3-plain-gqa": dict(kv_heads=2),
}


def make(path: Path, *, longrope=False, partial=1.0, layers=2, hidden=64, heads=4, kv_heads=4, inter=128,
         vocab=320, original=64, seed=0) -> Path:
    import torch
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(seed)
    half = int(hidden // heads * partial) // 2
    rope = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": partial}
    ctx = original
    if longrope:
        gen = torch.Generator().manual_seed(seed + 1)
        factors = (1 + 3 * torch.rand(2, half, generator=gen)).tolist()
        rope = {"rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": partial,
                "short_factor": factors[0], "long_factor": factors[1], "original_max_position_embeddings": original}
        ctx = 4 * original
    cfg = Phi3Config(hidden_size=hidden, intermediate_size=inter, num_attention_heads=heads,
                     num_key_value_heads=kv_heads, num_hidden_layers=layers, vocab_size=vocab,
                     max_position_embeddings=ctx, original_max_position_embeddings=original, rope_parameters=rope,
                     tie_word_embeddings=False, pad_token_id=0, bos_token_id=3, eos_token_id=2)
    model = Phi3ForCausalLM(cfg)
    spread(model)
    model.save_pretrained(path)
    make_tokenizer(path, vocab)
    return path
