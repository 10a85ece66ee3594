"""Qwen2-MoE and Qwen3-MoE as tvm.relax.frontend.nn modules: qwen's decoder, sparse blocks where the config says."""
from __future__ import annotations

from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import op

from llmc.compiler import layers, moe
from llmc.families import experts
from llmc.families.llama import nn as llama_nn
from llmc.families.qwen import nn as qwen_nn
from llmc.quant import Scheme

kv_cache_spec = qwen_nn.kv_cache_spec


class SharedExpertMoE(moe.SparseMoE):
    """qwen2_moe: the routed experts plus a shared expert scaled by sigmoid(shared_expert_gate(x))."""

    def __init__(self, cfg: dict, s: Scheme, act: str):
        super().__init__(cfg, s, act)
        self.shared_expert = llama_nn.MLP({**cfg, "intermediate_size": cfg["shared_expert_intermediate_size"]}, s, act)
        self.shared_expert_gate = layers.FloatLinear(cfg["hidden_size"], 1, s.model_dtype, act)

    def forward(self, x: nn.Tensor) -> nn.Tensor:
        return super().forward(x) + op.sigmoid(self.shared_expert_gate(x)) * self.shared_expert(x)


class CausalLM(qwen_nn.CausalLM):
    def feed_forward(self, cfg: dict, s: Scheme, act: str, layer: int) -> nn.Module:
        if not experts.is_sparse(layer, cfg):
            return llama_nn.MLP(cfg, s, act)
        if "shared_expert_intermediate_size" in cfg:
            return SharedExpertMoE(cfg, s, act)
        return moe.SparseMoE(cfg, s, act)
