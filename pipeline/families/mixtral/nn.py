"""Mixtral as tvm.relax.frontend.nn modules: llama's decoder, a sparse MoE block as every layer's MLP."""
from __future__ import annotations

from tvm.relax.frontend import nn

from llmc.compiler import moe
from llmc.families.llama import nn as llama_nn
from llmc.families.mixtral.config import moe as moe_shape
from llmc.quant import Scheme

kv_cache_spec = llama_nn.kv_cache_spec


class CausalLM(llama_nn.CausalLM):
    MLP_NAME = "moe"

    def feed_forward(self, cfg: dict, s: Scheme, act: str, layer: int) -> nn.Module:
        return moe.SparseMoE(moe_shape(cfg), s, act, names=("e1_e3", "e2"))
