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


def write_gguf(hf_dir: Path, path: Path, arch: str, tensor_type: str = "F16") -> dict:
    """The tiny Hugging Face model in hf_dir written as llama.cpp writes a GGUF of a llama-like family
    (llama, mistral, qwen2, qwen3): its names, metadata, q/k permutation where llama.cpp applies one,
    byte-level BPE tokenizer metadata; 2-D weights in tensor_type (F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,
    Q5_1: what the gguf package can quantize), norms and biases in F32. Returns the float state as the
    file holds it (each weight quantized and dequantized again), Hugging Face names."""
    import json

    import gguf
    import numpy as np
    from gguf.quants import dequantize, quantize
    from safetensors.numpy import load_file

    from llmc import families

    cfg = json.loads((hf_dir / "config.json").read_text())
    family = families.architecture(families.ALIASES[arch])
    state = {}
    for f in sorted(hf_dir.glob("*.safetensors")):
        state.update(load_file(f))
    heads, kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(cfg.get("rms_norm_eps", 1e-6))
    rope = cfg.get("rope_parameters") or {}
    writer.add_rope_freq_base(float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0))))
    _gguf_tokenizer(writer, hf_dir)
    names = {hf: gguf_name for gguf_name, hf in _expand(family.GGUF_NAMES, cfg["num_hidden_layers"]).items()}
    permuted = family.gguf_unpermute(families.model_config(cfg, families.ALIASES[arch]))
    held = {}
    qtype = getattr(gguf.GGMLQuantizationType, tensor_type)
    for name, w in state.items():
        if name == "lm_head.weight" and cfg.get("tie_word_embeddings"):
            continue
        w = np.asarray(w, np.float32)
        if name in permuted:
            n = permuted[name]
            w = w.reshape(n, 2, w.shape[0] // n // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
        if w.ndim == 2:
            data = quantize(w, qtype)
            writer.add_tensor(names[name], data, raw_shape=data.shape, raw_dtype=qtype)
            back = dequantize(data, qtype).reshape(w.shape)
        else:
            writer.add_tensor(names[name], w)
            back = w
        if name in permuted:  # the file's values in Hugging Face's order
            n = permuted[name]
            back = back.reshape(n, back.shape[0] // n // 2, 2, *back.shape[1:]).swapaxes(1, 2).reshape(back.shape)
        held[name] = back
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return held


def _expand(names: dict[str, str], layers: int) -> dict[str, str]:
    out = {}
    for gguf_name, hf in names.items():
        if "{i}" in gguf_name:
            out.update({gguf_name.format(i=i): hf.format(i=i) for i in range(layers)})
        else:
            out[gguf_name] = hf
    return out


def _gguf_tokenizer(writer, hf_dir: Path) -> None:
    """Byte-level BPE tokenizer metadata (tokenizer.ggml.model "gpt2") from the folder's tokenizer.json."""
    import json

    spec = json.loads((hf_dir / "tokenizer.json").read_text())
    vocab = dict(spec["model"]["vocab"])
    for added in spec.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    specials = {a["content"] for a in spec.get("added_tokens", []) if a.get("special")}
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"].get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in specials else 1 for t in tokens])
    writer.add_token_merges(merges)
    config = json.loads((hf_dir / "tokenizer_config.json").read_text())
    for key, add in (("bos_token", writer.add_bos_token_id), ("eos_token", writer.add_eos_token_id),
                     ("pad_token", writer.add_pad_token_id)):
        if config.get(key) in vocab:
            add(vocab[config[key]])
    if config.get("chat_template"):
        writer.add_chat_template(config["chat_template"])
