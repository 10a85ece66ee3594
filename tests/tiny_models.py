"""Tiny random Hugging Face models, made with transformers at test time."""
from __future__ import annotations

import sys
from pathlib import Path



def make_llama(path: Path, *, tied=False, kv_heads=2, model_type="llama", sliding_window=None, layers=2,
               hidden=64, heads=4, inter=128, vocab=320, ctx=128, seed=0, dtype="float32", **extra) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    torch.manual_seed(seed)
    if model_type == "mistral":
        cfg = MistralConfig(hidden_size=hidden, intermediate_size=inter, num_attention_heads=heads,
                            num_key_value_heads=kv_heads, num_hidden_layers=layers, vocab_size=vocab,
                            max_position_embeddings=ctx, sliding_window=sliding_window,
                            tie_word_embeddings=tied, **extra)
        model = MistralForCausalLM(cfg)
    else:
        cfg = LlamaConfig(hidden_size=hidden, intermediate_size=inter, num_attention_heads=heads,
                          num_key_value_heads=kv_heads, num_hidden_layers=layers, vocab_size=vocab,
                          max_position_embeddings=ctx, tie_word_embeddings=tied, **extra)
        model = LlamaForCausalLM(cfg)
    _spread(model)
    model = model.to(getattr(torch, dtype))
    model.save_pretrained(path)
    make_tokenizer(path, vocab)
    return path


def make_neox(path: Path, *, parallel=True, rotary_pct=0.5, layers=2, hidden=64, heads=4, inter=128,
              vocab=320, ctx=128, seed=0) -> Path:
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(hidden_size=hidden, intermediate_size=inter, num_attention_heads=heads,
                        num_hidden_layers=layers, vocab_size=vocab, max_position_embeddings=ctx,
                        use_parallel_residual=parallel, rotary_pct=rotary_pct)
    model = GPTNeoXForCausalLM(cfg)
    _spread(model)
    model.save_pretrained(path)
    make_tokenizer(path, vocab)
    return path


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


def _spread(model) -> None:
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


def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct GGUF (scripts/fetch_smollm2.py finds or fetches it)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from fetch_smollm2 import smollm2_gguf as fetch

    return fetch()
