"""MLC's model_config for gpt2 (its GPT2Config fields), from a Hugging Face config.json."""
from __future__ import annotations

from llmc.errors import UserError
from llmc.families.base import MAX_CONTEXT, flag, integer, positive, real, require

ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")


def normalize(hf: dict, model_type: str = "gpt2") -> dict:
    act = hf.get("activation_function", "gelu_new")
    if act not in ACTIVATIONS:
        raise UserError(f"gpt2 activation {act!r} is not supported (supported: {', '.join(ACTIVATIONS)})")
    if hf.get("tie_word_embeddings") is False:
        raise UserError("gpt2 with an untied lm_head is not supported")
    n_embd = require(hf, "n_embd", "hidden_size", model_type=model_type)
    n_head = require(hf, "n_head", "num_attention_heads", model_type=model_type)
    cfg = {
        "vocab_size": require(hf, "vocab_size", model_type=model_type),
        "n_embd": n_embd,
        "n_layer": require(hf, "n_layer", "num_hidden_layers", model_type=model_type),
        "n_head": n_head,
        "layer_norm_epsilon": real(hf, "layer_norm_epsilon", 1e-5),
        "n_inner": integer(hf, "n_inner", default=4 * n_embd),
        "context_window_size": integer(hf, "context_window_size", "n_positions", "max_position_embeddings",
                                       model_type=model_type, high=MAX_CONTEXT),
        "prefill_chunk_size": 0,
        "scale_attn_by_inverse_layer_idx": flag(hf, "scale_attn_by_inverse_layer_idx", False),
        "tensor_parallel_shards": 1,
        "head_dim": n_embd // n_head,
        "max_batch_size": 1,
        "tie_word_embeddings": True,
    }
    positive(cfg, "vocab_size", "n_embd", "n_layer", "n_head", "n_inner")
    if n_embd % n_head:
        raise UserError("n_embd must be a multiple of n_head")
    if not flag(hf, "scale_attn_weights", True):
        raise UserError("gpt2 without scale_attn_weights is not supported")
    return cfg
