"""Phi-3 as tvm.relax.frontend.nn modules, with MLC's parameter names: llama's decoder, RoPE applied in the
model (partial rotary, LongRoPE's factors and attention factor), so the KV cache runs with RoPE off.

Under LongRoPE the library also exports `*_long` functions that take the long factors at every position
(see config.py for why; runtime/library.py uses them)."""
from __future__ import annotations

import contextlib

from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import op

from llmc.compiler import layers, rotary
from llmc.compiler.kv_cache import KVCacheSpec
from llmc.families.llama import nn as llama_nn
from llmc.families.phi3.config import inverse_frequencies

LONG_VARIANTS = ("prefill", "decode", "batch_prefill", "batch_decode", "batch_verify")


class Attention(nn.Module):
    def __init__(self, cfg: dict, s, act: str):
        self.head_dim = hd = cfg["head_dim"]
        self.num_q_heads, self.num_kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.qkv_proj = layers.linear(cfg["hidden_size"], (self.num_q_heads + 2 * self.num_kv_heads) * hd, s, act)
        self.o_proj = layers.linear(self.num_q_heads * hd, cfg["hidden_size"], s, act)
        scaling = cfg.get("rope_scaling") or {}
        self.inv_freq = inverse_frequencies(cfg)
        self.long_freq = inverse_frequencies(cfg, "long_factor") if scaling else None
        self.long_from = scaling.get("original_max_position_embeddings", 0)  # 0 while tracing a *_long function
        self.rope_scale = scaling.get("attention_factor", 1.0)

    def forward(self, x: nn.Tensor, cache, layer_id: int) -> nn.Tensor:
        b, t, _ = x.shape
        hq, hkv = self.num_q_heads, self.num_kv_heads
        q, k, v = op.split(op.reshape(self.qkv_proj(x), (b, t, hq + 2 * hkv, self.head_dim)), [hq, hq + hkv], axis=2)
        positions = cache.get_query_positions(b * t)
        q, k = (rotary.apply(y, positions, self.inv_freq, self.rope_scale, self.long_freq, self.long_from)
                for y in (q, k))
        out = cache.attention_with_fused_qkv(layer_id, op.concat([q, k, v], dim=2), hq, sm_scale=self.head_dim ** -0.5)
        return self.o_proj(op.reshape(out, (b, t, hq * self.head_dim)))


class CausalLM(llama_nn.CausalLM):
    """llama's decoder layer and backbone, this attention; under LongRoPE, the `*_long` functions."""
    ATTENTION = Attention

    def __init__(self, cfg: dict, s, act: str):
        super().__init__(cfg, s, act)
        self.longrope = bool(cfg.get("rope_scaling"))

    @contextlib.contextmanager
    def _long_factors(self):
        attentions = [layer.self_attn for layer in self.model.layers]
        saved = [a.long_from for a in attentions]
        for a in attentions:
            a.long_from = 0
        try:
            yield
        finally:
            for a, value in zip(attentions, saved):
                a.long_from = value

    def spec(self) -> dict:
        functions = super().spec()
        if self.longrope:
            functions.update({f"{name}_long": dict(functions[name]) for name in LONG_VARIANTS})  # export pops "$"
        return functions

    def prefill_long(self, input_embed: nn.Tensor, paged_kv_cache):
        with self._long_factors():
            return self.prefill(input_embed, paged_kv_cache)

    def decode_long(self, input_embed: nn.Tensor, paged_kv_cache):
        with self._long_factors():
            return self.decode(input_embed, paged_kv_cache)

    def batch_prefill_long(self, input_embeds: nn.Tensor, logit_positions: nn.Tensor, paged_kv_cache):
        with self._long_factors():
            return self.batch_prefill(input_embeds, logit_positions, paged_kv_cache)

    def batch_decode_long(self, input_embeds: nn.Tensor, paged_kv_cache):
        with self._long_factors():
            return self.batch_decode(input_embeds, paged_kv_cache)

    def batch_verify_long(self, input_embeds: nn.Tensor, paged_kv_cache):
        with self._long_factors():
            return self.batch_verify(input_embeds, paged_kv_cache)


def kv_cache_spec(cfg: dict) -> KVCacheSpec:
    window = cfg.get("sliding_window_size", -1)
    return KVCacheSpec(
        num_hidden_layers=cfg["num_hidden_layers"], num_attention_heads=cfg["num_attention_heads"],
        num_key_value_heads=cfg["num_key_value_heads"], head_dim=cfg["head_dim"],
        rope_theta=cfg["position_embedding_base"], rope_scaling=None, rotary_dim=cfg["head_dim"],
        sliding_window_size=window if window and window > 0 else -1, rope_mode="none")
