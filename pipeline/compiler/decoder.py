"""The decoder skeleton every family shares, as tvm.relax.frontend.nn modules.

Backbone: embedding -> decoder layers -> final norm. CausalLM: a backbone and an output head that is the
embedding (tied) or a linear layer with float32 logits. A family builds its own layers and norms and
names the attributes, since attribute names are parameter names: MLC's weights use the family's own
(`model.embed_tokens`, `gpt_neox.final_layer_norm`, `lm_head`, ...). Parameters are exported in the order
they are set here: embedding, layers, norm, then the head.
"""
from __future__ import annotations

from tvm.relax.frontend import nn

from llmc.compiler import layer_functions, layers
from llmc.quant import Scheme


class Backbone(nn.Module):
    def __init__(self, embed_name: str, embedding: nn.Module, decoder_layers: list[nn.Module], norm_name: str,
                 final_norm: nn.Module):
        self._embed_name, self._norm_name = embed_name, norm_name  # strings: not parameters
        setattr(self, embed_name, embedding)
        self.layers = nn.ModuleList(decoder_layers)
        setattr(self, norm_name, final_norm)

    @property
    def embedding(self) -> nn.Module:
        return getattr(self, self._embed_name)

    def forward(self, x: nn.Tensor, cache) -> nn.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer_functions.call(self, layer, x, cache, i)
        return getattr(self, self._norm_name)(x)


class CausalLM(nn.Module):
    def __init__(self, backbone_name: str, backbone: Backbone, head_name: str, cfg: dict, s: Scheme, act: str):
        self._backbone_name, self._head_name = backbone_name, head_name
        setattr(self, backbone_name, backbone)
        self.tied = cfg["tie_word_embeddings"]
        if not self.tied:
            setattr(self, head_name, layers.linear(cfg["hidden_size"], cfg["vocab_size"], s, act, final=True,
                                                   out_dtype="float32"))

    @property
    def backbone(self) -> Backbone:
        return getattr(self, self._backbone_name)

    def embed_tokens(self, ids: nn.Tensor) -> nn.Tensor:
        return self.backbone.embedding(ids)

    def hidden(self, x: nn.Tensor, cache) -> nn.Tensor:
        return self.backbone(x, cache)

    final_logit_softcap: float | None = None  # Gemma 2: logits become cap * tanh(logits / cap)

    def logits(self, h: nn.Tensor) -> nn.Tensor:
        logits = self.backbone.embedding.lm_head(h) if self.tied else getattr(self, self._head_name)(h)
        if self.final_logit_softcap:
            cap = nn.Tensor.from_scalar(self.final_logit_softcap, logits.dtype)
            logits = nn.op.tanh(logits / cap) * cap
        active = getattr(self, "active_vocab_size", None)
        return layers.mask_beyond(logits, active) if active and active < logits.shape[-1] else logits
