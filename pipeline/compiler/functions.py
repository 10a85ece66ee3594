"""The functions a model library exports, with MLC's names and argument orders.

An architecture's CausalLM mixes in LibraryFunctions and provides
embed_tokens(ids), hidden(embeds, cache) and logits(hidden).
"""
from __future__ import annotations

from tvm import relax, te
from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import op
from tvm.relax.frontend.nn.llm.kv_cache import PagedKVCache

from llmc.compiler import kv_cache


def _rows(h: nn.Tensor, positions: nn.Tensor) -> nn.Tensor:
    """h[:, positions, :] (a gather of our own: TVM's take warns about unchecked indices)."""
    def gather(x, pos):
        b, _, d = x.shape
        return te.compute((b, pos.shape[0], d), lambda i, j, k: x[i, pos[j], k], name="rows")

    return op.tensor_expr_op(gather, "rows", [h, positions])


def _last_token(h: nn.Tensor) -> nn.Tensor:
    def index(x):
        b, s, d = x.shape
        return te.compute((b, 1, d), lambda i, _, k: x[i, s - 1, k], name="index")

    return op.tensor_expr_op(index, "index", [h])


class LibraryFunctions:
    # set by build(): the KV cache spec, the activation dtype, the target, and the sizes
    kv_spec: kv_cache.KVCacheSpec
    dtype: str
    target: object
    hidden_size: int
    prefill_chunk_size: int
    # called with the module traced so far once the KV cache's kernels are in it (compiler.prebuild builds
    # them while the rest traces)
    on_kernels_traced = None

    def embed(self, input_ids: nn.Tensor):
        return self.embed_tokens(input_ids)

    def prefill(self, input_embed: nn.Tensor, paged_kv_cache: PagedKVCache):
        return self.logits(_last_token(self.hidden(input_embed, paged_kv_cache))), paged_kv_cache

    def decode(self, input_embed: nn.Tensor, paged_kv_cache: PagedKVCache):
        return self.logits(self.hidden(input_embed, paged_kv_cache)), paged_kv_cache

    def batch_prefill(self, input_embeds: nn.Tensor, logit_positions: nn.Tensor, paged_kv_cache: PagedKVCache):
        h = _rows(self.hidden(input_embeds, paged_kv_cache), logit_positions)
        return self.logits(h), paged_kv_cache

    def batch_decode(self, input_embeds: nn.Tensor, paged_kv_cache: PagedKVCache):
        return self.logits(self.hidden(input_embeds, paged_kv_cache)), paged_kv_cache

    def batch_verify(self, input_embeds: nn.Tensor, paged_kv_cache: PagedKVCache):
        return self.logits(self.hidden(input_embeds, paged_kv_cache)), paged_kv_cache

    def create_tir_paged_kv_cache(self, max_batch_size, max_total_seq_len, prefill_chunk_size, page_size,
                                  support_sliding_window) -> PagedKVCache:
        cache = kv_cache.create(self.kv_spec, self.dtype, self.target, max_batch_size, max_total_seq_len,
                                prefill_chunk_size, page_size, support_sliding_window)
        if self.on_kernels_traced is not None:
            self.on_kernels_traced(relax.BlockBuilder.current().get())
        return cache

    def softmax_with_temperature(self, logits: nn.Tensor, temperature: nn.Tensor):
        b, s, v = logits.shape
        t = op.reshape(temperature, (b, 1, 1))
        return op.softmax(logits / t, axis=-1)

    def alloc_embedding_tensor(self):
        return op.zeros([self.prefill_chunk_size, self.hidden_size], self.dtype)

    def spec(self) -> dict:
        h, d = self.hidden_size, self.dtype
        packed = {"param_mode": "packed", "effect_mode": "none"}
        plain = {"param_mode": "none", "effect_mode": "none"}
        cache = nn.spec.Object(object_type=PagedKVCache)
        # the KV cache first: its kernels build while the rest traces (compiler.prebuild)
        return {
            "create_tir_paged_kv_cache": {"max_batch_size": int, "max_total_seq_len": int,
                                          "prefill_chunk_size": int, "page_size": int,
                                          "support_sliding_window": int, "$": plain},
            "embed": {"input_ids": nn.spec.Tensor(["seq_len"], "int32"), "$": packed},
            "prefill": {"input_embed": nn.spec.Tensor([1, "seq_len", h], d), "paged_kv_cache": cache, "$": packed},
            "decode": {"input_embed": nn.spec.Tensor([1, 1, h], d), "paged_kv_cache": cache, "$": packed},
            "batch_prefill": {"input_embeds": nn.spec.Tensor([1, "seq_len", h], d),
                              "logit_positions": nn.spec.Tensor(["batch_size"], "int32"),
                              "paged_kv_cache": cache, "$": packed},
            "batch_decode": {"input_embeds": nn.spec.Tensor(["batch_size", 1, h], d), "paged_kv_cache": cache,
                             "$": packed},
            "batch_verify": {"input_embeds": nn.spec.Tensor([1, "seq_len", h], d), "paged_kv_cache": cache,
                             "$": packed},
            "softmax_with_temperature": {"logits": nn.spec.Tensor(["batch_size", 1, "vocab_size"], "float32"),
                                         "temperature": nn.spec.Tensor(["batch_size"], "float32"), "$": plain},
            "alloc_embedding_tensor": {"$": plain},
        }
