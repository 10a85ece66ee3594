"""The paged KV cache of a model library (TVM's TIR kernels), created with MLC's argument order."""
from __future__ import annotations

from dataclasses import dataclass

import contextlib

import tvm
from tvm import relax
from tvm.relax.frontend.nn.llm import kv_cache as tvm_kv
from tvm.relax.frontend.nn.llm.kv_cache import RopeMode, TIRPagedKVCache

from llmc.compiler import attention
from llmc.errors import NotAvailable

_tvm_rope = tvm_kv.llama_rope_with_position_map


@dataclass(frozen=True)
class KVCacheSpec:
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rope_theta: float
    rope_scaling: dict | None
    rotary_dim: int
    sliding_window_size: int = -1
    attention_sink_size: int = 0
    rope_mode: str = "normal"  # "none": positions enter the model another way (GPT-2's table, Gemma's two RoPEs)
    attn_softcap: float = 0.0  # Gemma 2: scores become cap * tanh(score / cap)
    layered_window: bool = False  # the window applies only to layers that call with a negative sm_scale

    def metadata(self) -> dict:
        return {"num_hidden_layers": self.num_hidden_layers, "num_attention_heads": self.num_attention_heads,
                "num_key_value_heads": self.num_key_value_heads, "head_dim": self.head_dim}


@contextlib.contextmanager
def _cpu_kernels(spec: KVCacheSpec, target):
    """Swap TVM's CPU attention and RoPE kernel factories for ours (attention.py) while the
    cache's creation call is built; GPU libraries keep TVM's kernels, which MLC's runtimes drive."""
    if target.kind.name != "llvm":
        if spec.attn_softcap or spec.layered_window:
            raise NotAvailable(f"attention soft-capping and per-layer sliding windows are in llmc's CPU attention "
                               f"kernels only (TVM {tvm.__version__}'s {target.kind.name} kernels have neither): "
                               "compile this model for the cpu device")
        yield
        return
    window = spec.sliding_window_size if spec.sliding_window_size > 0 else 0
    extra = dict(softcap=spec.attn_softcap, layered=spec.layered_window)
    sink = spec.attention_sink_size
    replaced = {
        "_attention_prefill_ragged_cpu": lambda h_kv, h_q, d_qk, d_v, dtype, *_a, **_k:
            attention.ragged_prefill(h_kv, h_q, d_qk, dtype, window, sink, **extra),
        "_attention_prefill_cpu": lambda h_kv, h_q, d, dtype, *_a, **_k:
            attention.paged_prefill(h_kv, h_q, d, dtype, window, sink, **extra),
        "_attention_decode_cpu": lambda h_kv, h_q, d, dtype, *_a, **_k:
            attention.paged_decode(h_kv, h_q, d, dtype, window, sink, **extra),
        "llama_rope_with_position_map": _rope,
    }
    saved = {name: getattr(tvm_kv, name) for name in replaced}
    for name, factory in replaced.items():
        setattr(tvm_kv, name, factory)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(tvm_kv, name, value)


def _rope(theta, scale, head_dim, h_q, h_kv, dtype, rope_scaling, rotary_dim=None):
    if rope_scaling.get("rope_type") == "longrope":  # takes an extra factors buffer: TVM's kernel
        return _tvm_rope(theta, scale, head_dim, h_q, h_kv, dtype, rope_scaling, rotary_dim)
    return attention.rope(theta, scale, head_dim, h_q, h_kv, dtype, rope_scaling, rotary_dim)


def create(spec: KVCacheSpec, dtype: str, target, max_batch_size, max_total_seq_len, prefill_chunk_size,
           page_size, support_sliding_window) -> TIRPagedKVCache:
    with _cpu_kernels(spec, target):
        return _create(spec, dtype, target, max_batch_size, max_total_seq_len, prefill_chunk_size, page_size,
                       support_sliding_window)


def _create(spec, dtype, target, max_batch_size, max_total_seq_len, prefill_chunk_size, page_size,
            support_sliding_window) -> TIRPagedKVCache:
    return TIRPagedKVCache(
        attn_kind="mha",
        max_batch_size=max_batch_size,
        max_total_seq_len=max_total_seq_len,
        prefill_chunk_size=prefill_chunk_size,
        page_size=page_size,
        support_sliding_window=support_sliding_window,
        layer_partition=relax.ShapeExpr([0, spec.num_hidden_layers]),
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        qk_head_dim=spec.head_dim,
        v_head_dim=spec.head_dim,
        mla_original_qk_head_dim=0,
        mla_original_v_head_dim=0,
        rope_mode=RopeMode.NONE if spec.rope_mode == "none" else RopeMode.NORMAL,
        rope_scale=1,
        rope_theta=spec.rope_theta,
        rope_scaling=spec.rope_scaling or {},
        rope_ext_factors=relax.prim_value(0),
        rotary_dim=spec.rotary_dim,
        enable_disaggregation=False,
        dtype=dtype,
        target=target,
    )
