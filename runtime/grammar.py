"""Structured output: response_format json_object / json_schema constrains sampling with xgrammar (what
MLC uses). A grammar is compiled once per format; each choice gets a matcher that masks, before
sampling, every token that cannot continue valid output, and ends the choice when the JSON is complete.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from llmc.errors import NotAvailable
from llmc.runtime import protocol as p


class Grammars:
    def __init__(self, model_dir: Path, vocab_size: int, stop_ids: list[int]):
        self.model_dir, self.vocab_size, self.stop_ids = Path(model_dir), vocab_size, stop_ids
        self._compiler = None
        self._compiled: dict[str, object] = {}

    def compile(self, response_format) -> object | None:
        """The compiled grammar of an OpenAI response_format (None for text)."""
        if response_format is None:
            return None
        if not isinstance(response_format, dict) or response_format.get("type") not in ("text", "json_object",
                                                                                          "json_schema"):
            raise p.BadRequestError("response_format", 'must be {"type": "text" | "json_object" | "json_schema"}')
        kind = response_format["type"]
        if kind == "text":
            return None
        schema = {"type": "object"}
        if kind == "json_schema":
            spec = response_format.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
                raise p.BadRequestError("response_format", "json_schema needs {\"name\", \"schema\": {...}}")
            schema = spec.get("schema") or {}
        key = json.dumps(schema, sort_keys=True)
        if key not in self._compiled:
            try:
                self._compiled[key] = self._xgr_compiler().compile_json_schema(key, any_whitespace=False)
            except (RuntimeError, ValueError) as exc:
                raise p.BadRequestError("response_format", f"the JSON schema does not compile: {exc}") from None
        return self._compiled[key]

    def matcher(self, grammar) -> "Matcher":
        return Matcher(grammar, self.vocab_size)

    def _xgr_compiler(self):
        if self._compiler is None:
            try:
                import xgrammar as xgr
            except ImportError:
                raise NotAvailable("response_format needs xgrammar (pip install --no-deps xgrammar: its GPU "
                                   "kernels' triton is not used on the CPU)") from None
            spec = json.loads((self.model_dir / "tokenizer.json").read_text())
            vocab = dict(spec["model"]["vocab"])
            for added in spec.get("added_tokens", []):
                vocab[added["content"]] = added["id"]
            tokens = [""] * (max(vocab.values()) + 1)
            for token, i in vocab.items():
                tokens[i] = token
            info = xgr.TokenizerInfo(tokens, _vocab_type(xgr, spec), vocab_size=self.vocab_size,
                                     stop_token_ids=self.stop_ids, add_prefix_space=_prefix_space(spec))
            self._compiler = xgr.GrammarCompiler(info)
        return self._compiler


class Matcher:
    """One choice's place in its grammar."""

    def __init__(self, grammar, vocab_size: int):
        import xgrammar as xgr

        self._m = xgr.GrammarMatcher(grammar)
        self._bits = np.zeros(xgr.get_bitmask_shape(1, vocab_size), dtype=np.int32)
        self.vocab_size = vocab_size

    def mask(self, logits: np.ndarray) -> np.ndarray:
        """logits with every token the grammar forbids next at -inf."""
        self._m.fill_next_token_bitmask(self._bits)
        allowed = np.unpackbits(self._bits.view(np.uint8), bitorder="little")[: len(logits)].astype(bool)
        return np.where(allowed, logits, -np.inf)

    def accept(self, token: int) -> None:
        self._m.accept_token(token)

    @property
    def done(self) -> bool:
        return self._m.is_terminated()


def _vocab_type(xgr, spec: dict):
    decoders = spec.get("decoder") or {}
    kinds = {d.get("type") for d in decoders.get("decoders", [decoders])} if isinstance(decoders, dict) else set()
    if "ByteLevel" in kinds:
        return xgr.VocabType.BYTE_LEVEL
    if "ByteFallback" in kinds:
        return xgr.VocabType.BYTE_FALLBACK
    return xgr.VocabType.RAW


def _prefix_space(spec: dict) -> bool:
    normalizer = json.dumps(spec.get("normalizer") or {}) + json.dumps(spec.get("pre_tokenizer") or {})
    return "Prepend" in normalizer or '"prepend_scheme": "always"' in normalizer
