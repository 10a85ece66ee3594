"""GPT-NeoX (RedPajama-INCITE) as tvm.relax.frontend.nn modules, with Hugging Face's parameter names."""
from __future__ import annotations

from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import op

from llmc.compiler import decoder, layers
from llmc.compiler.kv_cache import KVCacheSpec
from llmc.quant import Scheme

ACTIVATIONS = {
    "gelu": lambda x: op.gelu(x),
    "gelu_new": lambda x: op.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: op.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: op.gelu(x, approximate="tanh"),
    "relu": op.relu,
    "silu": op.silu,
}


class Attention(nn.Module):
    def __init__(self, cfg: dict, s: Scheme, act: str):
        h = cfg["hidden_size"]
        self.heads = cfg["num_attention_heads"]
        self.head_dim = h // self.heads
        self.query_key_value = layers.linear(h, 3 * h, s, act, bias=True)
        self.dense = layers.linear(h, h, s, act, bias=True)

    def forward(self, x: nn.Tensor, cache, layer_id: int) -> nn.Tensor:
        b, t, _ = x.shape
        # Hugging Face packs q, k, v per head; the KV cache wants all q heads, then k, then v.
        qkv = op.reshape(self.query_key_value(x), (b, t, self.heads, 3, self.head_dim))
        qkv = op.reshape(op.permute_dims(qkv, [0, 1, 3, 2, 4]), (b, t, 3 * self.heads, self.head_dim))
        out = cache.attention_with_fused_qkv(layer_id, qkv, self.heads, sm_scale=self.head_dim ** -0.5)
        return self.dense(op.reshape(out, (b, t, self.heads * self.head_dim)))


class MLP(nn.Module):
    def __init__(self, cfg: dict, s: Scheme, act: str):
        h, inter = cfg["hidden_size"], cfg["intermediate_size"]
        self.out_dtype = cfg.get("ffn_out_dtype") or act
        self.act_dtype = act
        self.act = ACTIVATIONS[cfg.get("hidden_act", "gelu")]
        self.dense_h_to_4h = layers.linear(h, inter, s, act, bias=True)
        self.dense_4h_to_h = layers.linear(inter, h, s, act, bias=True, out_dtype=self.out_dtype,
                                           bias_dtype=cfg.get("ffn_out_dtype") or s.model_dtype)

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        y = self.dense_4h_to_h(self.act(self.dense_h_to_4h(x)))
        return y.astype(self.act_dtype) if self.out_dtype != self.act_dtype else y


class Layer(nn.Module):
    SHARED_FORWARD = True  # layer_id only names the cache layer (compiler/layer_functions.py)

    def __init__(self, cfg: dict, s: Scheme, act: str):
        h, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
        self.parallel = cfg["use_parallel_residual"]
        self.input_layernorm = layers.LayerNorm(h, eps, s.model_dtype)
        self.post_attention_layernorm = layers.LayerNorm(h, eps, s.model_dtype)
        self.attention = Attention(cfg, s, act)
        self.mlp = MLP(cfg, s, act)

    def forward(self, x: nn.Tensor, cache, layer_id: int) -> nn.Tensor:
        attn = self.attention(self.input_layernorm(x), cache, layer_id)
        if self.parallel:
            return self.mlp(self.post_attention_layernorm(x)) + attn + x
        x = attn + x
        return self.mlp(self.post_attention_layernorm(x)) + x


class CausalLM(decoder.CausalLM):
    def __init__(self, cfg: dict, s: Scheme, act: str):
        backbone = decoder.Backbone(
            "embed_in", layers.Embedding(cfg["vocab_size"], cfg["hidden_size"], s, act),
            [Layer(cfg, s, act) for _ in range(cfg["num_hidden_layers"])],
            "final_layer_norm", layers.LayerNorm(cfg["hidden_size"], cfg["layer_norm_eps"], s.model_dtype))
        super().__init__("gpt_neox", backbone, "embed_out", cfg, s, act)


def kv_cache_spec(cfg: dict) -> KVCacheSpec:
    heads = cfg["num_attention_heads"]
    head_dim = cfg["hidden_size"] // heads
    return KVCacheSpec(
        num_hidden_layers=cfg["num_hidden_layers"], num_attention_heads=heads, num_key_value_heads=heads,
        head_dim=head_dim, rope_theta=cfg["position_embedding_base"], rope_scaling=None,
        rotary_dim=int(head_dim * cfg["rotary_pct"]))
