"""MLC's model_config for gemma2 and gemma3 (its Gemma2Config / Gemma3 text fields), plus what MLC leaves
out: the kind of each layer and gemma3's two RoPE bases."""
from __future__ import annotations

from llmc.errors import UserError
from llmc.families.base import MAX_CONTEXT, context_window, flag, integer, number, positive, real, require

ACTIVATIONS = ("gelu_pytorch_tanh", "gelu_tanh", "gelu")  # transformers' gemma "gelu" is also the tanh form
LAYER_KINDS = ("sliding_attention", "full_attention")


def normalize(hf: dict, model_type: str = "gemma2") -> dict:
    if "text_config" in hf:
        return _text_part(hf, model_type)
    if flag(hf, "use_bidirectional_attention", False):
        raise UserError(f"{model_type} with use_bidirectional_attention (an embedding model) is not supported")
    if flag(hf, "attention_bias", False):
        raise UserError(f"{model_type} with attention_bias is not supported")
    act = hf.get("hidden_activation") or hf.get("hidden_act") or "gelu_pytorch_tanh"
    if act not in ACTIVATIONS:
        raise UserError(f"{model_type} activation {act!r} is not supported (supported: {', '.join(ACTIVATIONS)})")
    heads = require(hf, "num_attention_heads", model_type=model_type)
    hidden = require(hf, "hidden_size", model_type=model_type)
    layers = require(hf, "num_hidden_layers", model_type=model_type)
    gemma2 = model_type == "gemma2"
    cfg = {
        "hidden_size": hidden,
        "intermediate_size": require(hf, "intermediate_size", model_type=model_type),
        "num_attention_heads": heads,
        "num_key_value_heads": integer(hf, "num_key_value_heads", default=heads),
        "head_dim": integer(hf, "head_dim", default=max(hidden // heads, 1)),
        "num_hidden_layers": layers,
        "rms_norm_eps": real(hf, "rms_norm_eps", 1e-6),
        "vocab_size": require(hf, "vocab_size", model_type=model_type),
        "hidden_activation": "gelu_pytorch_tanh",
        "tie_word_embeddings": flag(hf, "tie_word_embeddings", True),
        "query_pre_attn_scalar": number(hf.get("query_pre_attn_scalar", 256), "query_pre_attn_scalar"),
        "attn_logit_softcapping": _cap(hf, "attn_logit_softcapping", 50.0 if gemma2 else None),
        "final_logit_softcapping": _cap(hf, "final_logit_softcapping", 30.0 if gemma2 else None),
        "sliding_window": integer(hf, "sliding_window", default=4096, high=MAX_CONTEXT),
        "layer_types": _layer_types(hf, layers, 2 if gemma2 else 6),
        "qk_norm": not gemma2,
        "context_window_size": context_window(hf, model_type),
        "prefill_chunk_size": 0,
        "tensor_parallel_shards": 1,
        "max_batch_size": 1,
    }
    cfg.update(_ropes(hf, model_type))
    positive(cfg, "hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
             "vocab_size", "num_key_value_heads", "head_dim")
    if cfg["num_attention_heads"] % cfg["num_key_value_heads"]:
        raise UserError("num_attention_heads must be a multiple of num_key_value_heads")
    if cfg["query_pre_attn_scalar"] <= 0:
        raise UserError("config value query_pre_attn_scalar must be positive")
    return cfg


def _text_part(hf: dict, model_type: str) -> dict:
    """The language model of a Gemma3ForConditionalGeneration checkpoint (its tensors under
    language_model.): the vision tower and projector are left out, as the library has no image input."""
    text = hf["text_config"]
    if not isinstance(text, dict) or model_type != "gemma3":
        raise UserError("config value text_config must be a gemma3 text config object")
    text = {**text, "model_type": "gemma3_text"}
    text.setdefault("tie_word_embeddings", hf.get("tie_word_embeddings", True))
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        if hf.get(key) is not None:
            text.setdefault(key, hf[key])
    return {**normalize(text, model_type), "weight_prefix": "language_model."}


def _cap(hf: dict, name: str, default: float | None) -> float | None:
    value = hf.get(name, default)
    return None if value is None else real({name: value}, name, 1.0)


def _layer_types(hf: dict, layers: int, pattern: int) -> list[str]:
    """transformers' layer_types, or its rule from sliding_window_pattern: every pattern-th layer is full."""
    kinds = hf.get("layer_types")
    if kinds is None:
        pattern = integer(hf, "sliding_window_pattern", default=pattern)
        return ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(layers)]
    if not isinstance(kinds, list) or len(kinds) != layers or any(k not in LAYER_KINDS for k in kinds):
        raise UserError(f"config value layer_types must list {layers} of {' / '.join(LAYER_KINDS)}")
    return list(kinds)


def _ropes(hf: dict, model_type: str) -> dict:
    """position_embedding_base (full layers, with their scaling) and rope_local_base_freq (windowed layers).
    gemma2 has one base for both; transformers 5 writes rope_parameters per layer kind."""
    params = hf.get("rope_parameters")
    if isinstance(params, dict) and isinstance(params.get("full_attention"), dict):
        full, local = params["full_attention"], params.get("sliding_attention") or {}
    else:
        full = dict(params or {})
        if isinstance(hf.get("rope_scaling"), dict):
            full = {**hf["rope_scaling"], **full}
        full.setdefault("rope_theta", hf.get("rope_theta", 1000000.0 if model_type == "gemma3" else 10000.0))
        local = {"rope_theta": hf.get("rope_local_base_freq", full["rope_theta"] if model_type == "gemma2" else 10000.0)}
    for kind, rope in (("full", full), ("sliding", local)):
        if rope.get("rope_type", rope.get("type", "default")) not in ("default", "linear", None):
            raise UserError(f"{model_type} RoPE scaling {rope.get('rope_type')!r} on {kind}-attention layers is "
                            "not supported (supported: default, linear)")
    kind = full.get("rope_type", full.get("type", "default"))
    return {
        "position_embedding_base": number(full.get("rope_theta", 10000.0)),
        "rope_local_base_freq": number(local.get("rope_theta", 10000.0), "rope_local_base_freq"),
        "rope_scaling": {"rope_type": "linear", "factor": real(full, "factor", 1.0)} if kind == "linear" else None,
        "rope_local_scaling_factor": real(local, "factor", 1.0) if local.get("rope_type") == "linear" else 1.0,
    }


def inverse_frequencies(cfg: dict, layer_kind: str):
    """transformers' inv_freq for a layer kind, float32 (linear scaling divides it by the factor)."""
    import numpy as np

    d = cfg["head_dim"]
    if layer_kind == "full_attention":
        base = cfg["position_embedding_base"]
        factor = (cfg.get("rope_scaling") or {}).get("factor", 1.0)
    else:
        base, factor = cfg["rope_local_base_freq"], cfg.get("rope_local_scaling_factor", 1.0)
    exponents = np.arange(0, d, 2, dtype=np.float32) / np.float32(d)
    inv = np.float32(1.0) / np.power(np.float32(base), exponents, dtype=np.float32)
    return (inv / np.float32(factor)).astype(np.float32)
