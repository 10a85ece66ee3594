"""Phi-3 as tvm.relax.frontend.nn modules, with MLC's parameter names: llama's decoder, RoPE applied in the
model (partial rotary, LongRoPE's short factors and attention factor), so the KV cache runs with RoPE off."""
from __future__ import annotations

from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import op

from llmc.compiler import layers, rotary
from llmc.compiler.kv_cache import KVCacheSpec
from llmc.families.llama import nn as llama_nn
from llmc.families.phi3.config import inverse_frequencies
from llmc.quant import Scheme


class Attention(nn.Module):
    def __init__(self, cfg: dict, s: Scheme, act: str):
        self.head_dim = hd = cfg["head_dim"]
        self.num_q_heads, self.num_kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.qkv_proj = layers.linear(cfg["hidden_size"], (self.num_q_heads + 2 * self.num_kv_heads) * hd, s, act)
        self.o_proj = layers.linear(self.num_q_heads * hd, cfg["hidden_size"], s, act)
        self.inv_freq = inverse_frequencies(cfg)
        self.rope_scale = (cfg.get("rope_scaling") or {}).get("attention_factor", 1.0)

    def forward(self, x: nn.Tensor, cache, layer_id: int) -> nn.Tensor:
        b, t, _ = x.shape
        hq, hkv = self.num_q_heads, self.num_kv_heads
        q, k, v = op.split(op.reshape(self.qkv_proj(x), (b, t, hq + 2 * hkv, self.head_dim)), [hq, hq + hkv], axis=2)
        positions = cache.get_query_positions(b * t)
        q = rotary.apply(q, positions, self.inv_freq, self.rope_scale)
        k = rotary.apply(k, positions, self.inv_freq, self.rope_scale)
        out = cache.attention_with_fused_qkv(layer_id, op.concat([q, k, v], dim=2), hq, sm_scale=self.head_dim ** -0.5)
        return self.o_proj(op.reshape(out, (b, t, hq * self.head_dim)))


class CausalLM(llama_nn.CausalLM):
    """llama's decoder layer and backbone, this attention."""
    ATTENTION = Attention


def kv_cache_spec(cfg: dict) -> KVCacheSpec:
    window = cfg.get("sliding_window_size", -1)
    return KVCacheSpec(
        num_hidden_layers=cfg["num_hidden_layers"], num_attention_heads=cfg["num_attention_heads"],
        num_key_value_heads=cfg["num_key_value_heads"], head_dim=cfg["head_dim"],
        rope_theta=cfg["position_embedding_base"], rope_scaling=None, rotary_dim=cfg["head_dim"],
        sliding_window_size=window if window and window > 0 else -1, rope_mode="none")
