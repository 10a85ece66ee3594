"""Qwen2 and Qwen3 as tvm.relax.frontend.nn modules, with MLC's parameter names."""
from __future__ import annotations

from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import op

from llmc.compiler import layers
from llmc.compiler.kv_cache import KVCacheSpec
from llmc.families.llama import nn as llama_nn
from llmc.families.qwen.config import qk_norm, qkv_bias
from llmc.quant import Scheme


class Attention(nn.Module):
    def __init__(self, cfg: dict, s: Scheme, act: str):
        self.head_dim = hd = cfg["head_dim"]
        self.num_q_heads, self.num_kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        h = cfg["hidden_size"]
        self.c_attn = layers.linear(h, (self.num_q_heads + 2 * self.num_kv_heads) * hd, s, act, bias=qkv_bias(cfg))
        self.o_proj = layers.linear(self.num_q_heads * hd, h, s, act, bias=bool(cfg.get("attention_bias")))
        self.normed = qk_norm(cfg)
        if self.normed:
            self.q_norm = layers.RMSNorm(hd, cfg["rms_norm_eps"], s.model_dtype)
            self.k_norm = layers.RMSNorm(hd, cfg["rms_norm_eps"], s.model_dtype)

    def forward(self, x: nn.Tensor, cache, layer_id: int) -> nn.Tensor:
        b, t, _ = x.shape
        hq, hkv = self.num_q_heads, self.num_kv_heads
        qkv = op.reshape(self.c_attn(x), (b, t, hq + 2 * hkv, self.head_dim))
        if self.normed:  # per head, over head_dim, before the cache applies RoPE
            q, k, v = op.split(qkv, [hq, hq + hkv], axis=2)
            qkv = op.concat([self.q_norm(q), self.k_norm(k), v], dim=2)
        out = cache.attention_with_fused_qkv(layer_id, qkv, hq, sm_scale=self.head_dim ** -0.5)
        return self.o_proj(op.reshape(out, (b, t, hq * self.head_dim)))


class CausalLM(llama_nn.CausalLM):
    """llama's decoder layer and backbone, this attention."""
    ATTENTION = Attention


def kv_cache_spec(cfg: dict) -> KVCacheSpec:
    return KVCacheSpec(
        num_hidden_layers=cfg["num_hidden_layers"], num_attention_heads=cfg["num_attention_heads"],
        num_key_value_heads=cfg["num_key_value_heads"], head_dim=cfg["head_dim"], rope_theta=cfg["rope_theta"],
        rope_scaling=None, rotary_dim=cfg["head_dim"], sliding_window_size=-1, attention_sink_size=0)
