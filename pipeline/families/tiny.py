"""Tiny random Hugging Face models for tests, made with transformers (the test extra) when asked.

Each family's tiny.py makes its own architecture with these helpers and names the VARIANTS that the
parity tests compile and compare against transformers.
"""
from __future__ import annotations

from pathlib import Path

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def make_tokenizer(path: Path, vocab_size: int) -> None:
    """A byte-level BPE: 256 byte tokens, ChatML specials, and merges learned from a small text."""
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    text = ["The capital of France is Paris. Hello world! What is the answer? " * 20,
            "the quick brown fox jumps over the lazy dog 0123456789"]
    tok.train_from_iterator(text, trainer)
    filler = vocab_size - tok.get_vocab_size()  # a big vocabulary cannot be learned from this text
    if filler > 0:
        tok.add_tokens([f"<extra_{i}>" for i in range(filler)])
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    tok.save(str(path / "tokenizer.json"))
    config = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
              "unk_token": "<|endoftext|>", "chat_template": CHATML_TEMPLATE,
              "tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": False}
    (path / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def spread(model) -> None:
    """Random init gives near-identical logits; wider weights make greedy tokens meaningful."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.3 if "embed" in name else 0.08)
            elif "bias" in name:
                p.normal_(0, 0.02)
            else:
                p.uniform_(0.8, 1.2)
