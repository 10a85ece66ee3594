"""Gemma 2 and Gemma 3 as tvm.relax.frontend.nn modules, with MLC's parameter names.

RoPE is applied here (two bases in gemma3), so the KV cache runs with RoPE off. A windowed layer calls
the cache with a negative sm_scale: llmc's CPU kernels read the sign as "apply the window" (attention.py).
"""
from __future__ import annotations

import math

from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import op

from llmc.compiler import decoder, layers, rotary
from llmc.compiler.kv_cache import KVCacheSpec
from llmc.families.gemma.config import inverse_frequencies
from llmc.quant import Scheme


def _norm(size: int, cfg: dict, s: Scheme) -> layers.RMSNorm:
    return layers.RMSNorm(size, cfg["rms_norm_eps"], s.model_dtype, offset=1.0)


class Attention(nn.Module):
    def __init__(self, cfg: dict, s: Scheme, act: str, layer_id: int):
        self.head_dim = hd = cfg["head_dim"]
        self.num_q_heads, self.num_kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        h = cfg["hidden_size"]
        self.qkv_proj = layers.linear(h, (self.num_q_heads + 2 * self.num_kv_heads) * hd, s, act)
        self.o_proj = layers.linear(self.num_q_heads * hd, h, s, act)
        self.normed = bool(cfg.get("qk_norm"))
        if self.normed:
            self.q_norm, self.k_norm = _norm(hd, cfg, s), _norm(hd, cfg, s)
        kind = cfg["layer_types"][layer_id]
        self.inv_freq = inverse_frequencies(cfg, kind)
        scale = float(cfg["query_pre_attn_scalar"]) ** -0.5
        self.sm_scale = -scale if kind == "sliding_attention" else scale

    def forward(self, x: nn.Tensor, cache, layer_id: int) -> nn.Tensor:
        b, t, _ = x.shape
        hq, hkv = self.num_q_heads, self.num_kv_heads
        qkv = op.reshape(self.qkv_proj(x), (b, t, hq + 2 * hkv, self.head_dim))
        q, k, v = op.split(qkv, [hq, hq + hkv], axis=2)
        if self.normed:
            q, k = self.q_norm(q), self.k_norm(k)
        positions = cache.get_query_positions(b * t)
        q, k = rotary.apply(q, positions, self.inv_freq), rotary.apply(k, positions, self.inv_freq)
        out = cache.attention_with_fused_qkv(layer_id, op.concat([q, k, v], dim=2), hq, sm_scale=self.sm_scale)
        return self.o_proj(op.reshape(out, (b, t, hq * self.head_dim)))


class MLP(nn.Module):
    def __init__(self, cfg: dict, s: Scheme, act: str):
        self.gate_up_proj = layers.linear(cfg["hidden_size"], 2 * cfg["intermediate_size"], s, act)
        self.down_proj = layers.linear(cfg["intermediate_size"], cfg["hidden_size"], s, act)

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        gate, up = op.split(self.gate_up_proj(x), 2, axis=-1)
        return self.down_proj(op.gelu(gate, approximate="tanh") * up)


class DecoderLayer(nn.Module):
    """Each sublayer normed on the way in and on the way out, before the residual add."""
    SHARED_FORWARD = True  # layer_id only names the cache layer (compiler/layer_functions.py)

    def __init__(self, cfg: dict, s: Scheme, act: str, layer_id: int):
        h = cfg["hidden_size"]
        self.self_attn = Attention(cfg, s, act, layer_id)
        self.mlp = MLP(cfg, s, act)
        self.input_layernorm, self.post_attention_layernorm = _norm(h, cfg, s), _norm(h, cfg, s)
        self.pre_feedforward_layernorm, self.post_feedforward_layernorm = _norm(h, cfg, s), _norm(h, cfg, s)

    def forward(self, x: nn.Tensor, cache, layer_id: int) -> nn.Tensor:
        x = x + self.post_attention_layernorm(self.self_attn(self.input_layernorm(x), cache, layer_id))
        return x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))


class CausalLM(decoder.CausalLM):
    def __init__(self, cfg: dict, s: Scheme, act: str):
        h = cfg["hidden_size"]
        backbone = decoder.Backbone(
            "embed_tokens", layers.Embedding(cfg["vocab_size"], h, s, act),
            [DecoderLayer(cfg, s, act, i) for i in range(cfg["num_hidden_layers"])],
            "norm", _norm(h, cfg, s))
        super().__init__("model", backbone, "lm_head", cfg, s, act)
        self.embed_scale = math.sqrt(h)
        self.final_logit_softcap = cfg.get("final_logit_softcapping")

    def embed_tokens(self, ids: nn.Tensor) -> nn.Tensor:
        x = super().embed_tokens(ids)
        return x * nn.Tensor.from_scalar(self.embed_scale, x.dtype)


def kv_cache_spec(cfg: dict) -> KVCacheSpec:
    windowed = "sliding_attention" in cfg["layer_types"]
    return KVCacheSpec(
        num_hidden_layers=cfg["num_hidden_layers"], num_attention_heads=cfg["num_attention_heads"],
        num_key_value_heads=cfg["num_key_value_heads"], head_dim=cfg["head_dim"],
        rope_theta=cfg["position_embedding_base"], rope_scaling=None, rotary_dim=cfg["head_dim"],
        sliding_window_size=cfg["sliding_window"] if windowed else -1, rope_mode="none",
        attn_softcap=cfg.get("attn_logit_softcapping") or 0.0, layered_window=windowed)
