"""Tokenizer files for mlc-chat-config.json: copied from the model, or built from a GGUF's vocabulary."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from llmc.errors import NotAvailable, UserError

FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "added_tokens.json",
         "tokenizer.model")
GGUF_CONTROL, GGUF_USER_DEFINED = 3, 4
# The order MLC's gen_config lists tokenizer files in (interface/gen_config.py, TOKENIZER_FILES); a
# tokenizer.json it converts from tokenizer.model is appended after them.
MLC_ORDER = ("tokenizer.model", "tokenizer.json", "vocab.json", "merges.txt", "added_tokens.json",
             "tokenizer_config.json")


def present(src: Path | None) -> list[str]:
    if src is None:
        return []
    return [name for name in FILES if (src / name).is_file()]


def listed(out: Path, converted_json: bool) -> list[str]:
    """mlc-chat-config.json's tokenizer_files, in MLC's order."""
    names = [n for n in MLC_ORDER if (out / n).is_file() and not (converted_json and n == "tokenizer.json")]
    return names + (["tokenizer.json"] if converted_json and (out / "tokenizer.json").is_file() else [])


def copy(src: Path, out: Path) -> list[str]:
    names = present(src)
    for name in names:
        shutil.copyfile(src / name, out / name)
    return names


def gguf_tokenizer(meta: dict) -> tuple[str, dict]:
    """(tokenizer.json text, tokenizer_config dict) from a GGUF's tokenizer.ggml.* metadata."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    kind = meta.get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise NotAvailable(f"building tokenizer.json from a GGUF with tokenizer model {kind!r} is not "
                           "supported (only byte-level BPE, 'gpt2'); give the model's tokenizer files instead")
    tokens = list(meta["tokenizer.ggml.tokens"])
    types = list(meta.get("tokenizer.ggml.token_type", [1] * len(tokens)))
    merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges", [])]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    special = [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types)
               if ty in (GGUF_CONTROL, GGUF_USER_DEFINED)]
    tok.add_special_tokens(special)

    def token(key):
        i = meta.get(f"tokenizer.ggml.{key}_token_id")
        return tokens[int(i)] if i is not None and 0 <= int(i) < len(tokens) else None

    config = {
        "add_bos_token": bool(meta.get("tokenizer.ggml.add_bos_token", False)),
        "add_eos_token": bool(meta.get("tokenizer.ggml.add_eos_token", False)),
        "bos_token": token("bos"), "eos_token": token("eos"), "pad_token": token("padding"),
        "unk_token": token("unknown"),
        "chat_template": meta.get("tokenizer.chat_template"),
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    return tok.to_str(pretty=False), {k: v for k, v in config.items() if v is not None}


def vocab_size(out: Path) -> int | None:
    """The tokenizer's length with added tokens (what MLC's gen_config takes as active_vocab_size,
    len(AutoTokenizer)); None without a readable tokenizer.json."""
    if not (out / "tokenizer.json").exists():
        return None
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(out / "tokenizer.json")).get_vocab_size(with_added_tokens=True)
    except Exception:  # noqa: BLE001 - gen_config reports an unreadable tokenizer.json itself
        return None


def info(out: Path) -> dict:
    """MLC's tokenizer_info, detected from tokenizer.json by MLC's own rules (cpp/tokenizers/tokenizers.cc,
    Tokenizer::DetectTokenizerInfo), so MLC's runtimes read our folders as they read theirs:
    - token_postproc_method: the last ByteLevel / ByteFallback among the decoders (a Sequence's, or the
      one); byte_fallback without a decoder or with neither (the model's byte_fallback flag is not read);
    - prepend_space_in_encode: a normalizer Prepend of "▁" (a Metaspace pre-tokenizer is not read);
    - strip_space_in_decode: a Strip decoder with content " ", start 1 and stop 0 exactly.
    Our own runtime decodes with the tokenizers library and does not use this."""
    path = out / "tokenizer.json"
    method, prepend, strip = "byte_fallback", False, False
    if not path.exists():
        return {"token_postproc_method": method, "prepend_space_in_encode": prepend, "strip_space_in_decode": strip}
    try:
        spec = json.loads(path.read_text())
    except ValueError as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from None
    decoders_ = _members(spec.get("decoder"), "decoders")
    for decoder in decoders_:
        method = {"ByteLevel": "byte_level", "ByteFallback": "byte_fallback"}.get(decoder.get("type"), method)
    prepend = any(n.get("type") == "Prepend" and n.get("prepend") == "\u2581"
                  for n in _members(spec.get("normalizer"), "normalizers"))
    strip = any(d.get("type") == "Strip" and d.get("content") == " " and d.get("start") == 1 and d.get("stop") == 0
                for d in decoders_)
    return {"token_postproc_method": method, "prepend_space_in_encode": prepend, "strip_space_in_decode": strip}


def _members(part, key: str) -> list[dict]:
    """A tokenizer.json component as a list: a Sequence's members, or the one component."""
    if not isinstance(part, dict):
        return []
    members = part.get(key, []) if part.get("type") == "Sequence" else [part]
    return [m for m in members if isinstance(m, dict)]
