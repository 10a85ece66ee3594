"""Tokenizer access and incremental detokenization that never splits a UTF-8 character."""
from __future__ import annotations

from pathlib import Path

REPLACEMENT = "\ufffd"


class Tokenizer:
    def __init__(self, model_dir: Path):
        from tokenizers import Tokenizer as HFTokenizer

        path = Path(model_dir) / "tokenizer.json"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing (run llmc gen_config without --no-tokenizer)")
        self._tok = HFTokenizer.from_file(str(path))

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=True)

    def token_text(self, token_id: int) -> str:
        return self._tok.decode([token_id], skip_special_tokens=False)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()


class Detokenizer:
    """Turns a growing list of token ids into text pieces.

    Each step decodes from the previous emission point (so a space that depends
    on the token before comes out right), and holds text back while it ends in
    an incomplete UTF-8 sequence (which decodes to U+FFFD).
    """

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix = 0     # decoding starts here, for context
        self.read = 0       # the text of ids[:read] has been emitted
        self.emitted = ""

    def add(self, token_id: int) -> str:
        self.ids.append(token_id)
        before = self.tokenizer.decode(self.ids[self.prefix:self.read])
        after = self.tokenizer.decode(self.ids[self.prefix:])
        if len(after) <= len(before) or after.endswith(REPLACEMENT):
            return ""
        piece = after[len(before):]
        self.prefix, self.read = self.read, len(self.ids)
        self.emitted += piece
        return piece

    def flush(self) -> str:
        """Whatever is still held back once generation ends."""
        text = self.tokenizer.decode(self.ids)
        piece = text[len(self.emitted):] if text.startswith(self.emitted) else ""
        self.emitted += piece
        return piece
