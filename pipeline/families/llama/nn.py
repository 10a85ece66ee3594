"""Llama and Mistral as tvm.relax.frontend.nn modules, with MLC's parameter names."""
from __future__ import annotations

from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import op

from llmc.compiler import decoder, layers
from llmc.compiler.kv_cache import KVCacheSpec
from llmc.quant import Scheme


class Attention(nn.Module):
    def __init__(self, cfg: dict, s: Scheme, act: str):
        self.head_dim = cfg["head_dim"]
        self.num_q_heads = cfg["num_attention_heads"]
        self.num_kv_heads = cfg["num_key_value_heads"]
        qkv = (self.num_q_heads + 2 * self.num_kv_heads) * self.head_dim
        self.qkv_proj = layers.linear(cfg["hidden_size"], qkv, s, act)
        self.o_proj = layers.linear(self.num_q_heads * self.head_dim, cfg["hidden_size"], s, act)

    def forward(self, x: nn.Tensor, cache, layer_id: int) -> nn.Tensor:
        b, t, _ = x.shape
        qkv = op.reshape(self.qkv_proj(x), (b, t, self.num_q_heads + 2 * self.num_kv_heads, self.head_dim))
        out = cache.attention_with_fused_qkv(layer_id, qkv, self.num_q_heads, sm_scale=self.head_dim ** -0.5)
        return self.o_proj(op.reshape(out, (b, t, self.num_q_heads * self.head_dim)))


class MLP(nn.Module):
    def __init__(self, cfg: dict, s: Scheme, act: str):
        self.inter = cfg["intermediate_size"]
        self.gate_up_proj = layers.linear(cfg["hidden_size"], 2 * self.inter, s, act)
        self.down_proj = layers.linear(self.inter, cfg["hidden_size"], s, act)

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        gate, up = op.split(self.gate_up_proj(x), 2, axis=-1)
        return self.down_proj(op.silu(gate) * up)


class DecoderLayer(nn.Module):
    SHARED_FORWARD = True  # layer_id only names the cache layer (compiler/layer_functions.py)

    def __init__(self, cfg: dict, s: Scheme, act: str, attention=Attention, mlp: nn.Module | None = None,
                 mlp_name: str = "mlp"):
        eps, h = cfg["rms_norm_eps"], cfg["hidden_size"]
        self.self_attn = attention(cfg, s, act)
        self._mlp_name = mlp_name  # the attribute is the parameters' name: MLC's mixtral says "moe"
        setattr(self, mlp_name, mlp if mlp is not None else MLP(cfg, s, act))
        self.input_layernorm = layers.RMSNorm(h, eps, s.model_dtype)
        self.post_attention_layernorm = layers.RMSNorm(h, eps, s.model_dtype)

    def forward(self, x: nn.Tensor, cache, layer_id: int) -> nn.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cache, layer_id)
        return x + getattr(self, self._mlp_name)(self.post_attention_layernorm(x))


class CausalLM(decoder.CausalLM):
    ATTENTION = Attention  # a family with llama's decoder and its own attention overrides this
    MLP_NAME = "mlp"

    def feed_forward(self, cfg: dict, s: Scheme, act: str, layer: int) -> nn.Module:
        """Layer `layer`'s MLP (a mixture-of-experts family's sparse blocks override this)."""
        return MLP(cfg, s, act)

    def __init__(self, cfg: dict, s: Scheme, act: str):
        backbone = decoder.Backbone(
            "embed_tokens", layers.Embedding(cfg["vocab_size"], cfg["hidden_size"], s, act),
            [DecoderLayer(cfg, s, act, self.ATTENTION, self.feed_forward(cfg, s, act, i), self.MLP_NAME)
             for i in range(cfg["num_hidden_layers"])],
            "norm", layers.RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"], s.model_dtype))
        super().__init__("model", backbone, "lm_head", cfg, s, act)


def kv_cache_spec(cfg: dict) -> KVCacheSpec:
    window = cfg.get("sliding_window_size", -1)
    return KVCacheSpec(
        num_hidden_layers=cfg["num_hidden_layers"], num_attention_heads=cfg["num_attention_heads"],
        num_key_value_heads=cfg["num_key_value_heads"], head_dim=cfg["head_dim"],
        rope_theta=cfg["position_embedding_base"], rope_scaling=cfg.get("rope_scaling"),
        rotary_dim=cfg["head_dim"], sliding_window_size=window if window and window > 0 else -1,
        attention_sink_size=cfg.get("attention_sink_size", 0) if window and window > 0 else 0)
