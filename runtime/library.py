"""A compiled model library with its weights: the functions MLC's runtimes call, from Python.

Owns the TVM VM, the parameters and the paged KV cache; knows nothing about
tokens as text, sampling or conversations (see engine.py for those).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from llmc import devices
from llmc.runtime.weights import load_arrays

PAGE_SIZE = 16


class ModelLibrary:
    def __init__(self, lib_path: str | Path, model_dir: str | Path, device: str = "cpu"):
        import tvm
        from tvm import relax

        self.tvm = tvm
        devices.require_runnable(device)
        self.dev = tvm.cpu()
        self.module = tvm.runtime.load_module(str(lib_path))
        self.vm = relax.VirtualMachine(self.module, self.dev)
        self.metadata = json.loads(str(self.vm["_metadata"]()))
        names = [p["name"] for p in self.metadata["params"]]
        self.params = [tvm.runtime.tensor(a, self.dev) for a in load_arrays(Path(model_dir), names)]
        self.prefill_chunk = int(self.metadata["prefill_chunk_size"])
        self._builtins = {name: tvm.get_global_func(f"vm.builtin.{name}") for name in (
            "kv_state_add_sequence", "kv_state_remove_sequence", "kv_state_begin_forward",
            "kv_state_end_forward", "kv_state_fork_sequence", "kv_state_popn")}
        self._fn = {name: self.vm[name] for name in ("embed", "prefill", "decode", "batch_prefill",
                                                     "batch_decode", "batch_verify", "create_tir_paged_kv_cache")}

    def create_kv_cache(self, max_sequences: int, max_total_tokens: int):
        s = self.tvm.runtime.ShapeTuple
        return self._fn["create_tir_paged_kv_cache"](
            s([max_sequences]), s([max_total_tokens]), s([self.prefill_chunk]), s([PAGE_SIZE]), s([0]))

    def add_sequence(self, kv, seq_id: int) -> None:
        # Sliding windows and sinks are masked inside the library's kernels, over a full cache.
        self._builtins["kv_state_add_sequence"](kv, seq_id)

    def remove_sequence(self, kv, seq_id: int) -> None:
        self._builtins["kv_state_remove_sequence"](kv, seq_id)

    def fork_sequence(self, kv, parent: int, child: int) -> None:
        self._builtins["kv_state_fork_sequence"](kv, parent, child, -1)

    def _embed(self, tokens) -> object:
        ids = self.tvm.runtime.tensor(np.asarray(tokens, dtype=np.int32), self.dev)
        return self._fn["embed"](ids, self.params)

    def prefill(self, kv, seq_id: int, tokens: list[int]) -> np.ndarray:
        """Run tokens through the model for one sequence; the logits [V] after the last one."""
        s = self.tvm.runtime.ShapeTuple
        logits = None
        for start in range(0, len(tokens), self.prefill_chunk):
            chunk = tokens[start:start + self.prefill_chunk]
            emb = self._embed(chunk)
            hidden = emb.shape[-1]
            self._builtins["kv_state_begin_forward"](kv, s([seq_id]), s([len(chunk)]))
            out = self._fn["prefill"](emb._create_view((1, len(chunk), hidden)), kv, self.params)
            self._builtins["kv_state_end_forward"](kv)
            logits = out[0]
        return logits.numpy().reshape(-1)

    def prefill_every_position(self, kv, seq_id: int, tokens: list[int], on_chunk) -> np.ndarray:
        """prefill, with the logits after every token: on_chunk(start, logits [chunk, V]) for each
        prefill chunk (MLC's batch_verify, which keeps every position's logits); returns the last row."""
        s = self.tvm.runtime.ShapeTuple
        last = None
        for start in range(0, len(tokens), self.prefill_chunk):
            chunk = tokens[start:start + self.prefill_chunk]
            emb = self._embed(chunk)
            self._builtins["kv_state_begin_forward"](kv, s([seq_id]), s([len(chunk)]))
            out = self._fn["batch_verify"](emb._create_view((1, len(chunk), emb.shape[-1])), kv, self.params)
            self._builtins["kv_state_end_forward"](kv)
            logits = out[0].numpy().reshape(len(chunk), -1)
            on_chunk(start, logits)
            last = logits[-1]
        return last

    def decode(self, kv, seq_ids: list[int], tokens: list[int]) -> np.ndarray:
        """One token for each of several sequences; logits [len(seq_ids), V]."""
        s = self.tvm.runtime.ShapeTuple
        emb = self._embed(tokens)
        hidden = emb.shape[-1]
        self._builtins["kv_state_begin_forward"](kv, s(list(seq_ids)), s([1] * len(seq_ids)))
        if len(seq_ids) == 1:
            out = self._fn["decode"](emb._create_view((1, 1, hidden)), kv, self.params)
        else:
            out = self._fn["batch_decode"](emb._create_view((len(seq_ids), 1, hidden)), kv, self.params)
        self._builtins["kv_state_end_forward"](kv)
        return out[0].numpy().reshape(len(seq_ids), -1)
