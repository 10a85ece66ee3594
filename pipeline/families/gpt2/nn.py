"""GPT-2 as tvm.relax.frontend.nn modules, with MLC's (Hugging Face's) parameter names."""
from __future__ import annotations

from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import op

from llmc.compiler import decoder, layer_functions, layers
from llmc.compiler.kv_cache import KVCacheSpec
from llmc.quant import Scheme


class Attention(nn.Module):
    def __init__(self, cfg: dict, s: Scheme, act: str):
        h = cfg["n_embd"]
        self.heads, self.head_dim = cfg["n_head"], cfg["head_dim"]
        self.by_layer = cfg["scale_attn_by_inverse_layer_idx"]
        self.c_attn = layers.linear(h, 3 * h, s, act, bias=True)
        self.c_proj = layers.linear(h, h, s, act, bias=True)

    def forward(self, x: nn.Tensor, cache, layer_id: int) -> nn.Tensor:
        b, t, _ = x.shape
        qkv = op.reshape(self.c_attn(x), (b, t, 3 * self.heads, self.head_dim))  # all q heads, then k, then v
        scale = self.head_dim ** -0.5 / (layer_id + 1 if self.by_layer else 1)
        out = cache.attention_with_fused_qkv(layer_id, qkv, self.heads, sm_scale=scale)
        return self.c_proj(op.reshape(out, (b, t, self.heads * self.head_dim)))


class MLP(nn.Module):
    def __init__(self, cfg: dict, s: Scheme, act: str):
        h, inner = cfg["n_embd"], cfg["n_inner"]
        self.c_fc = layers.linear(h, inner, s, act, bias=True)
        self.c_proj = layers.linear(inner, h, s, act, bias=True)

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        return self.c_proj(op.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    @property
    def SHARED_FORWARD(self) -> bool:  # noqa: N802 - compiler/layer_functions.py's flag
        """layer_id only names the cache layer, unless attention scales by it."""
        return not self.attn.by_layer

    def __init__(self, cfg: dict, s: Scheme, act: str):
        h, eps = cfg["n_embd"], cfg["layer_norm_epsilon"]
        self.ln_1 = layers.LayerNorm(h, eps, s.model_dtype)
        self.attn = Attention(cfg, s, act)
        self.ln_2 = layers.LayerNorm(h, eps, s.model_dtype)
        self.mlp = MLP(cfg, s, act)

    def forward(self, x: nn.Tensor, cache, layer_id: int) -> nn.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer_id)
        return x + self.mlp(self.ln_2(x))


class PositionTable(nn.Module):
    """The learned position embeddings (wpe), kept float: row p is added at position p."""

    def __init__(self, positions: int, dim: int, dtype: str):
        self.weight = nn.Parameter((positions, dim), dtype)

    def forward(self, positions: nn.Tensor) -> nn.Tensor:
        return op.take(self.weight, positions, axis=0)


class Transformer(nn.Module):
    """wte -> (+ wpe at each token's position in its sequence) -> blocks -> ln_f."""

    def __init__(self, cfg: dict, s: Scheme, act: str):
        h = cfg["n_embd"]
        self.wte = layers.Embedding(cfg["vocab_size"], h, s, act)
        self.wpe = PositionTable(cfg["context_window_size"], h, s.model_dtype)
        self.h = nn.ModuleList([Block(cfg, s, act) for _ in range(cfg["n_layer"])])
        self.ln_f = layers.LayerNorm(h, cfg["layer_norm_epsilon"], s.model_dtype)

    @property
    def embedding(self) -> nn.Module:
        return self.wte

    def forward(self, x: nn.Tensor, cache) -> nn.Tensor:
        b, t, h = x.shape
        positions = cache.get_query_positions(b * t)
        x = x + op.reshape(self.wpe(positions), (b, t, h)).astype(x.dtype)
        for i, block in enumerate(self.h):
            x = layer_functions.call(self, block, x, cache, i)
        return self.ln_f(x)


class CausalLM(decoder.CausalLM):
    def __init__(self, cfg: dict, s: Scheme, act: str):
        super().__init__("transformer", Transformer(cfg, s, act), "lm_head", cfg, s, act)


def kv_cache_spec(cfg: dict) -> KVCacheSpec:
    return KVCacheSpec(
        num_hidden_layers=cfg["n_layer"], num_attention_heads=cfg["n_head"], num_key_value_heads=cfg["n_head"],
        head_dim=cfg["head_dim"], rope_theta=10000, rope_scaling=None, rotary_dim=cfg["head_dim"],
        rope_mode="none")
