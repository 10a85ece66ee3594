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
        self.long_from = self._longrope(Path(model_dir))
        self._history: dict[int, list[int]] = {}  # each sequence's tokens, to run it again under LongRoPE

    def _longrope(self, model_dir: Path) -> int | None:
        """LongRoPE's original length when the library has `*_long` functions (phi3: see its config.py)."""
        chat = json.loads((model_dir / "mlc-chat-config.json").read_text()) \
            if (model_dir / "mlc-chat-config.json").is_file() else {}
        scaling = (chat.get("model_config") or {}).get("rope_scaling") or {}
        if scaling.get("rope_type") != "longrope":
            return None
        try:
            self._fn.update({f"{n}_long": self.vm[f"{n}_long"] for n in ("prefill", "decode", "batch_decode",
                                                                          "batch_verify")})
        except Exception:  # noqa: BLE001 - a library without them switches factors by position only
            return None
        return int(scaling["original_max_position_embeddings"])

    def _plan(self, kv, seq_id: int, tokens: list[int]) -> tuple[str, list[int]]:
        """(function suffix, tokens to run) for tokens appended to a sequence. Under LongRoPE a sequence
        that grows past the original length is run again from its first token with the long factors,
        as transformers does: its cached keys took the short ones."""
        history = self._history.setdefault(seq_id, [])
        before = len(history)
        history.extend(tokens)
        if self.long_from is None or len(history) <= self.long_from:
            return "", list(tokens)
        if before > self.long_from:
            return "_long", list(tokens)
        if before:
            self._builtins["kv_state_remove_sequence"](kv, seq_id)
            self._builtins["kv_state_add_sequence"](kv, seq_id)
        return "_long", list(history)

    def create_kv_cache(self, max_sequences: int, max_total_tokens: int):
        s = self.tvm.runtime.ShapeTuple
        return self._fn["create_tir_paged_kv_cache"](
            s([max_sequences]), s([max_total_tokens]), s([self.prefill_chunk]), s([PAGE_SIZE]), s([0]))

    def add_sequence(self, kv, seq_id: int) -> None:
        # Sliding windows and sinks are masked inside the library's kernels, over a full cache.
        self._builtins["kv_state_add_sequence"](kv, seq_id)
        self._history[seq_id] = []

    def remove_sequence(self, kv, seq_id: int) -> None:
        self._builtins["kv_state_remove_sequence"](kv, seq_id)
        self._history.pop(seq_id, None)

    def fork_sequence(self, kv, parent: int, child: int, at: int = -1) -> None:
        """child shares parent's KV pages: all of them, or its first `at` tokens."""
        self._builtins["kv_state_fork_sequence"](kv, parent, child, at)
        history = self._history.get(parent, [])
        self._history[child] = list(history if at < 0 else history[:at])

    def tokens(self, seq_id: int) -> list[int]:
        """The tokens whose keys and values a sequence holds."""
        return list(self._history.get(seq_id, []))

    def _embed(self, tokens) -> object:
        ids = self.tvm.runtime.tensor(np.asarray(tokens, dtype=np.int32), self.dev)
        return self._fn["embed"](ids, self.params)

    def prefill(self, kv, seq_id: int, tokens: list[int]) -> np.ndarray:
        """Run tokens through the model for one sequence; the logits [V] after the last one."""
        suffix, run = self._plan(kv, seq_id, tokens)
        return self._chunks(kv, seq_id, run, "prefill" + suffix)[-1].reshape(-1)

    def prefill_every_position(self, kv, seq_id: int, tokens: list[int], on_chunk) -> np.ndarray:
        """prefill, with the logits after every token: on_chunk(start, logits [chunk, V]) for each
        prefill chunk (MLC's batch_verify, which keeps every position's logits); returns the last row."""
        suffix, run = self._plan(kv, seq_id, tokens)
        skip = len(run) - len(tokens)  # earlier tokens run again under LongRoPE: not reported

        def report(start, rows):
            if start + len(rows) > skip:
                cut = max(skip - start, 0)
                on_chunk(start + cut - skip, rows[cut:])

        return self._chunks(kv, seq_id, run, "batch_verify" + suffix, report)[-1]

    def _chunks(self, kv, seq_id: int, tokens: list[int], fn: str, on_chunk=None) -> np.ndarray:
        """tokens in prefill chunks through fn; the last chunk's logits [rows, V]."""
        s = self.tvm.runtime.ShapeTuple
        logits = None
        for start in range(0, len(tokens), self.prefill_chunk):
            chunk = tokens[start:start + self.prefill_chunk]
            emb = self._embed(chunk)
            self._builtins["kv_state_begin_forward"](kv, s([seq_id]), s([len(chunk)]))
            out = self._fn[fn](emb._create_view((1, len(chunk), emb.shape[-1])), kv, self.params)
            self._builtins["kv_state_end_forward"](kv)
            logits = out[0].numpy().reshape(-1 if fn.startswith("prefill") else len(chunk), out[0].shape[-1])
            if on_chunk is not None:
                on_chunk(start, logits)
        return logits

    def decode(self, kv, seq_ids: list[int], tokens: list[int]) -> np.ndarray:
        """One token for each of several sequences; logits [len(seq_ids), V]."""
        rows: list = [None] * len(seq_ids)
        steps: dict[str, list[int]] = {"": [], "_long": []}
        for i, (seq, tok) in enumerate(zip(seq_ids, tokens)):
            suffix, run = self._plan(kv, seq, [tok])
            if len(run) > 1:  # crossed LongRoPE's original length: the whole sequence again
                rows[i] = self._chunks(kv, seq, run, "prefill_long")[-1]
            else:
                steps[suffix].append(i)
        for suffix, index in steps.items():
            if index:
                out = self._step(kv, [seq_ids[i] for i in index], [tokens[i] for i in index], suffix)
                for i, row in zip(index, out):
                    rows[i] = row
        return np.stack(rows)

    def _step(self, kv, seq_ids: list[int], tokens: list[int], suffix: str) -> np.ndarray:
        s = self.tvm.runtime.ShapeTuple
        emb = self._embed(tokens)
        hidden = emb.shape[-1]
        self._builtins["kv_state_begin_forward"](kv, s(list(seq_ids)), s([1] * len(seq_ids)))
        if len(seq_ids) == 1:
            out = self._fn["decode" + suffix](emb._create_view((1, 1, hidden)), kv, self.params)
        else:
            out = self._fn["batch_decode" + suffix](emb._create_view((len(seq_ids), 1, hidden)), kv, self.params)
        self._builtins["kv_state_end_forward"](kv)
        return out[0].numpy().reshape(len(seq_ids), -1)
