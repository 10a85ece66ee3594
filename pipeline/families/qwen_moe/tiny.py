"""Tiny random qwen2_moe and qwen3_moe models (transformers' own classes) for the parity tests."""
from __future__ import annotations

from pathlib import Path

from llmc.families.tiny import make_tokenizer, spread

# qwen2_moe: a shared expert, top-3 of 5 without renormalization, a dense layer (mlp_only_layers) among
# sparse ones; qwen3_moe: q/k norms, top-4 of 6 renormalized, every other layer sparse (decoder_sparse_step).
VARIANTS = {
    "qwen2moe-shared-dense": dict(model_type="qwen2_moe", experts=5, top_k=3, mlp_only_layers=[1], layers=3),
    "qwen3moe-top4-step2": dict(model_type="qwen3_moe", experts=6, top_k=4, norm_topk_prob=True, sparse_step=2),
}


def make(path: Path, *, model_type="qwen2_moe", experts=4, top_k=2, norm_topk_prob=False, mlp_only_layers=(),
         sparse_step=1, layers=2, hidden=64, heads=4, kv_heads=2, inter=96, moe_inter=48, shared_inter=80,
         vocab=320, ctx=128, seed=0, tied=False) -> Path:
    import torch
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM

    torch.manual_seed(seed)
    common = dict(hidden_size=hidden, intermediate_size=inter, moe_intermediate_size=moe_inter,
                  num_attention_heads=heads, num_key_value_heads=kv_heads, num_hidden_layers=layers,
                  vocab_size=vocab, max_position_embeddings=ctx, num_experts=experts, num_experts_per_tok=top_k,
                  norm_topk_prob=norm_topk_prob, mlp_only_layers=list(mlp_only_layers),
                  decoder_sparse_step=sparse_step, tie_word_embeddings=tied)
    if model_type == "qwen3_moe":
        model = Qwen3MoeForCausalLM(Qwen3MoeConfig(head_dim=hidden // heads, **common))
    else:
        model = Qwen2MoeForCausalLM(Qwen2MoeConfig(shared_expert_intermediate_size=shared_inter, **common))
    spread(model)
    model.save_pretrained(path)
    make_tokenizer(path, vocab)
    return path
