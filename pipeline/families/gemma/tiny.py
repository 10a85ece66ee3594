"""Tiny random gemma2 and gemma3 models (transformers' own classes) for the parity tests."""
from __future__ import annotations

from pathlib import Path

from llmc.families.tiny import make_tokenizer, spread

# Windows of 8 and 16 keys so the parity prompts (16 tokens + 8 decoded) cross them; head_dim 32 unlike
# hidden/heads; gemma2 with both soft-caps; gemma3 with a full layer every 3rd, a linear-scaled global RoPE.
VARIANTS = {
    "gemma2-softcap": dict(model_type="gemma2", window=8),
    "gemma3-two-ropes": dict(model_type="gemma3", window=8, layers=3, pattern=3, rope_scaling=4.0),
    "gemma3-untied-gqa": dict(model_type="gemma3", window=16, heads=6, kv_heads=2, hidden=96, tied=False),
    "gemma3-multimodal": dict(model_type="gemma3", window=8, layers=3, pattern=3, multimodal=True),
}


def make(path: Path, *, model_type="gemma2", window=8, layers=2, heads=4, kv_heads=2, hidden=64, head_dim=32,
         inter=128, vocab=320, ctx=128, tied=True, pattern=2, rope_scaling=None, pre_attn_scalar=24,
         multimodal=False, seed=0) -> Path:
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(seed)
    common = dict(hidden_size=hidden, intermediate_size=inter, num_attention_heads=heads,
                  num_key_value_heads=kv_heads, head_dim=head_dim, num_hidden_layers=layers, vocab_size=vocab,
                  max_position_embeddings=ctx, tie_word_embeddings=tied, sliding_window=window,
                  query_pre_attn_scalar=pre_attn_scalar or head_dim, pad_token_id=0, bos_token_id=3, eos_token_id=2)
    kinds = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(layers)]
    if model_type == "gemma3":
        rope = {"full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}
        if rope_scaling:
            rope["full_attention"] = {"rope_type": "linear", "factor": rope_scaling, "rope_theta": 1000000.0}
        text = Gemma3TextConfig(layer_types=kinds, rope_parameters=rope, **common)
        if multimodal:  # Gemma3ForConditionalGeneration with a small vision tower: its text part is the model
            from transformers import Gemma3Config, Gemma3ForConditionalGeneration

            vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                          image_size=28, patch_size=14)
            model = Gemma3ForConditionalGeneration(Gemma3Config(text_config=text.to_dict(), vision_config=vision,
                                                                mm_tokens_per_image=4, tie_word_embeddings=tied))
        else:
            model = Gemma3ForCausalLM(text)
    else:
        model = Gemma2ForCausalLM(Gemma2Config(layer_types=kinds, attn_logit_softcapping=2.0,
                                               final_logit_softcapping=3.0, **common))
    spread(model)
    model.config.use_cache = True
    model.save_pretrained(path)
    make_tokenizer(path, vocab)
    return path
