"""gen_config: mlc-chat-config.json (MLC's schema 0.1.0) and the tokenizer files.

Warnings about values beyond what the model supports are part of the
artifact (`warnings.txt`, shown by the CLI and not installed), so a cached
run shows them as the first run did.
"""
from __future__ import annotations

import json
from pathlib import Path

from llmc import families as models
from llmc.chat import sentencepiece as sentencepiece_convert
from llmc.chat import templates as conversation
from llmc.chat import tokenizer_files
from llmc.errors import UserError
from llmc.families.base import MAX_CONTEXT
from llmc.sources import hf_config as hfconfig

NAME = "gen_config"
VERSION = "5"
TOOLS = ("python", "llmc", "tokenizers", "gguf")
SIZES = ("context_window_size", "sliding_window_size", "prefill_chunk_size", "attention_sink_size",
         "tensor_parallel_shards", "max_batch_size")
EPHEMERAL = False
DEFAULTS = {"model_type": "auto", "quantization": "q0f32", "conv_template": "auto", "preset": "",
            "config_file": "config.json", "gguf": "", "no_tokenizer": False, **{k: None for k in SIZES}}
DEFAULT_MAX_BATCH_SIZE = 128
WARNINGS_FILE = "warnings.txt"
GENERATION = (("temperature", 1.0), ("presence_penalty", 0.0), ("frequency_penalty", 0.0),
              ("repetition_penalty", 1.0), ("top_p", 1.0))


def run(inputs: dict[str, Path], options: dict, out_dir: Path) -> None:
    src = inputs.get("config")
    gguf_path = src / options["gguf"] if options["gguf"] else None
    hf = hfconfig.load(None if gguf_path else src, gguf_path, options["preset"], options["config_file"])
    model_type = models.detect(hf, options["model_type"])
    cfg = models.model_config(hf, model_type)
    warnings: list[str] = []
    sizes = resolve_sizes(cfg, model_type, options, warnings)
    for name in ("context_window_size", "prefill_chunk_size", "tensor_parallel_shards", "max_batch_size"):
        cfg[name] = sizes[name]

    chat_template, encode, special = _tokenizer(src, gguf_path, out_dir, options["no_tokenizer"])
    conv_name = options["conv_template"]
    if conv_name == "auto":
        if chat_template is None or encode is None:
            raise UserError("--conv-template auto needs the model's chat template and tokenizer; none found: "
                            "pass --conv-template NAME")
        conv_name, alike = conversation.closest(chat_template, encode, **special)
    conv = conversation.get(conv_name)
    if options["conv_template"] == "auto" and alike < 1:
        conv = {**conv, "name": conversation.JINJA}
        (out_dir / conversation.JINJA_FILE).write_text(chat_template)
        warnings.append(f"no conversation template renders like the model's chat template (the closest, "
                        f"{conv_name!r}, has {alike:.0%} of tokens alike): llmc's engine renders the model's own "
                        f"template ({conversation.JINJA_FILE}); MLC's runtimes get {conv_name!r}'s fields")

    gen = {}
    if gguf_path is None and src is not None and (src / "generation_config.json").is_file():
        gen = hfconfig.read_json(src / "generation_config.json")
    chat_config = {
        "version": "0.1.0",
        "model_type": model_type,
        "quantization": options["quantization"],
        "model_config": cfg,
        "vocab_size": cfg["vocab_size"],
        "context_window_size": sizes["context_window_size"],
        "sliding_window_size": sizes["sliding_window_size"],
        "prefill_chunk_size": sizes["prefill_chunk_size"],
        "attention_sink_size": sizes["attention_sink_size"],
        "tensor_parallel_shards": sizes["tensor_parallel_shards"],
        "pipeline_parallel_stages": 1,
        "active_vocab_size": tokenizer_files.vocab_size(out_dir) or cfg["vocab_size"],
        **{name: float(_pick(name, default, gen, hf)) for name, default in GENERATION},
        "tokenizer_files": tokenizer_files.listed(out_dir, converted_json=src is not None and gguf_path is None
                                                  and not (src / "tokenizer.json").is_file()),
        "tokenizer_info": tokenizer_files.info(out_dir),
        "conv_template": mlc_chat_conv(conv),
        "pad_token_id": _pick("pad_token_id", 0, gen, hf),
        "bos_token_id": _pick("bos_token_id", 1, gen, hf),
        "eos_token_id": _pick("eos_token_id", 2, gen, hf),
        "model_task": "chat",
        "embedding_metadata": None,
    }
    (out_dir / "mlc-chat-config.json").write_text(json.dumps(chat_config, indent=2) + "\n")
    if warnings:
        (out_dir / WARNINGS_FILE).write_text("".join(f"{w}\n" for w in warnings))


def mlc_chat_conv(conv: dict) -> dict:
    """The template as mlc-chat-config.json holds it: MLC dumps the whole MLCChatConfig without leaving out
    None fields, so a template without a system prefix carries "system_prefix_token_ids": null."""
    ordered = {name: conv.get(name) for name in conversation.FIELDS if name in conv or name == "system_prefix_token_ids"}
    return {**ordered, **{k: v for k, v in conv.items() if k not in ordered}}


def resolve_sizes(cfg: dict, model_type: str, options: dict, warnings: list[str]) -> dict:
    """Context window, sliding window, prefill chunk, sinks, shards, batch: flags over config over defaults."""
    flags = {k: options.get(k) for k in SIZES}
    for name, value in flags.items():
        if value is not None and (value < 0 or (value == 0 and name != "attention_sink_size")):
            raise UserError(f"--{name.replace('_', '-')} must be positive, not {value}")
        if value is not None and value > MAX_CONTEXT:
            raise UserError(f"--{name.replace('_', '-')} {value} is beyond any model's reach (at most {MAX_CONTEXT})")
    has_window = "sliding_window_size" in cfg
    if flags["sliding_window_size"] is not None and not has_window:
        raise UserError(f"{model_type} has no sliding-window attention: --sliding-window-size does not apply")
    if flags["attention_sink_size"] and not has_window:
        raise UserError(f"{model_type} has no sliding-window attention: --attention-sink-size does not apply")
    limit = cfg["context_window_size"]
    window = flags["sliding_window_size"] or cfg.get("sliding_window_size", -1) or -1
    context = flags["context_window_size"] or limit
    if flags["context_window_size"] and flags["context_window_size"] > limit:
        warnings.append(f"context_window_size {context} exceeds the model's {limit} positions "
                        "(max_position_embeddings); quality may drop past it")
    if window > 0:
        if flags["context_window_size"]:
            warnings.append("context_window_size is ignored: with a sliding window the context is unbounded (-1)")
        context = -1
    span = window if window > 0 else context
    prefill = flags["prefill_chunk_size"] or min(span, 8192)
    if window > 0 and prefill > window:
        raise UserError(f"prefill_chunk_size {prefill} is larger than the sliding window {window}")
    if window <= 0 and prefill > context:
        raise UserError(f"prefill_chunk_size {prefill} is larger than the context window {context}")
    shards = flags["tensor_parallel_shards"] or 1
    sizes = {
        "context_window_size": context,
        "sliding_window_size": window if window > 0 else -1,
        "prefill_chunk_size": prefill,
        # MLC writes -1 for a model without attention sinks (gen_config: getattr(..., "attention_sink_size", -1))
        "attention_sink_size": (flags["attention_sink_size"] or 0) if has_window else -1,
        "tensor_parallel_shards": shards,
        "max_batch_size": flags["max_batch_size"] or DEFAULT_MAX_BATCH_SIZE,
    }
    if has_window:
        cfg["sliding_window_size"] = sizes["sliding_window_size"]
        cfg["attention_sink_size"] = sizes["attention_sink_size"]
    return sizes


def _tokenizer(src: Path | None, gguf_path: Path | None, out_dir: Path, skip: bool):
    """Write tokenizer files into out_dir; return (Jinja chat template, encode, special token strings)."""
    if skip:
        return None, None, {}
    if gguf_path is not None:
        from llmc.sources.gguf_file import _open, metadata

        meta = metadata(_open(gguf_path), ["tokenizer."])
        text, tok_config = tokenizer_files.gguf_tokenizer(meta)
        (out_dir / "tokenizer.json").write_text(text)
        (out_dir / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2) + "\n")
    else:
        if not tokenizer_files.present(src):
            raise UserError(f"no tokenizer files (tokenizer.json, tokenizer.model, ...) in {src}; pass "
                            "--no-tokenizer to write a config for weights-only use")
        tokenizer_files.copy(src, out_dir)
        tok_config = {}
        if (out_dir / "tokenizer_config.json").exists():
            tok_config = hfconfig.read_json(out_dir / "tokenizer_config.json")
        if (out_dir / "tokenizer.model").exists() and not (out_dir / "tokenizer.json").exists():
            # MLC's runtime reads tokenizer.json; build it as transformers would from the SentencePiece model.
            text = sentencepiece_convert.tokenizer_json_from_sentencepiece(
                out_dir / "tokenizer.model", legacy=bool(tok_config.get("legacy", True)))
            (out_dir / "tokenizer.json").write_text(text)
        if src is not None and (src / "chat_template.jinja").is_file():
            tok_config["chat_template"] = (src / "chat_template.jinja").read_text()
    encode = None
    if (out_dir / "tokenizer.json").exists():
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(out_dir / "tokenizer.json"))
        except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception for a bad file
            raise UserError(f"tokenizer.json is not a tokenizer the tokenizers library can read: {exc}") from None
        encode = lambda text: tok.encode(text, add_special_tokens=False).ids  # noqa: E731
    template = tok_config.get("chat_template")
    if isinstance(template, list):  # several named templates: the default one
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    return template, encode, conversation.special_tokens(tok_config)


def _pick(name: str, default, *sources: dict):
    """The first source that has name set: generation_config.json, then config.json, then the default."""
    for source in sources:
        if source.get(name) is not None:
            return source[name]
    return default
