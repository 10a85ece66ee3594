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


def write_gguf(hf_dir: Path, path: Path, arch: str, tensor_type: str = "F16", keep: bool = True) -> dict:
    """The tiny Hugging Face model in hf_dir written as llama.cpp writes a GGUF of its family: llama.cpp's
    names and metadata, its q/k permutation and stored-value changes (gemma's 1 + w norms, GPT-2's
    transposed Conv1D) where it applies them, byte-level BPE tokenizer metadata; 2-D weights in
    tensor_type (F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 by the gguf package; Q4_K and Q6_K by the encoders
    below, a weight whose rows are not whole 256-blocks falling back to Q8_0 as llama.cpp falls back),
    norms and biases in F32. Returns the float state as the file holds it (each weight quantized and
    dequantized again), Hugging Face names and layout; with keep=False nothing (a big model's benchmark)."""
    import json

    import gguf
    import numpy as np
    from gguf.quants import dequantize, quantize
    from safetensors.numpy import load_file

    from llmc import families

    cfg = json.loads((hf_dir / "config.json").read_text())
    model_type = families.ALIASES[cfg.get("model_type", arch)]
    family = families.architecture(model_type)
    state = {}
    for f in sorted(hf_dir.glob("*.safetensors")):
        state.update(load_file(f))
    writer = gguf.GGUFWriter(str(path), arch)
    _gguf_metadata(writer, cfg, arch)
    _gguf_tokenizer(writer, hf_dir)
    layers = cfg.get("num_hidden_layers", cfg.get("n_layer"))
    names = {hf: gguf_name for gguf_name, hf in _expand(family.GGUF_NAMES, layers).items()}
    experts = _stack_experts(state, names)
    permuted = family.gguf_unpermute(families.model_config(cfg, model_type))
    to_file = getattr(family, "gguf_from_hf", lambda name, w: w)
    to_hf = getattr(family, "gguf_to_hf", lambda name, w: w)
    held = {}
    for name in list(state):
        w = state.pop(name)  # a big model's benchmark holds each tensor once: source or written
        if name == "lm_head.weight" and cfg.get("tie_word_embeddings", True) or name not in names:
            continue
        w = to_file(name, np.asarray(w, np.float32))
        if name in permuted:
            n = permuted[name]
            w = w.reshape(n, 2, w.shape[0] // n // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
        if w.ndim in (2, 3) and "position" not in names[name]:
            qtype = getattr(gguf.GGMLQuantizationType, tensor_type)
            if tensor_type in K_ENCODERS and w.shape[-1] % 256:
                qtype = gguf.GGMLQuantizationType.Q8_0
            if qtype.name in K_ENCODERS:
                data = K_ENCODERS[tensor_type](w.reshape(-1, w.shape[-1])).reshape(*w.shape[:-1], -1)
            else:
                data = quantize(w, qtype)
            writer.add_tensor(names[name], data, raw_shape=data.shape, raw_dtype=qtype)
            back = dequantize(data, qtype).reshape(w.shape) if keep else None
        else:
            writer.add_tensor(names[name], w)
            back = w
        if not keep:
            continue
        if name in permuted:  # the file's values in Hugging Face's order
            n = permuted[name]
            back = back.reshape(n, back.shape[0] // n // 2, 2, *back.shape[1:]).swapaxes(1, 2).reshape(back.shape)
        if name in experts:  # the stacked tensor back as the checkpoint's one tensor per expert
            held.update({pattern: back[e] for e, pattern in enumerate(experts[name])})
            continue
        held[name] = to_hf(name, back)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return held


def _stack_experts(state: dict, names: dict[str, str]) -> dict[str, list[str]]:
    """Each layer's per-expert checkpoint tensors stacked [E, n, k] under their {e} pattern (what names maps
    to the file's ffn_*_exps), as llama.cpp's converter stacks them; returns pattern -> the names stacked."""
    import numpy as np

    stacked = {}
    for pattern in [n for n in names if "{e}" in n]:
        members = []
        while pattern.format(e=len(members)) in state:
            members.append(pattern.format(e=len(members)))
        if members:
            state[pattern] = np.stack([state.pop(m) for m in members])
            stacked[pattern] = members
    return stacked


def _gguf_metadata(writer, cfg: dict, arch: str) -> None:
    """The hyperparameters llama.cpp's converter writes for this architecture."""
    import gguf

    def first(*keys, default=None):
        return next((cfg[k] for k in keys if cfg.get(k) is not None), default)

    hidden, heads = first("hidden_size", "n_embd"), first("num_attention_heads", "n_head")
    writer.add_block_count(first("num_hidden_layers", "n_layer"))
    writer.add_context_length(first("max_position_embeddings", "n_positions"))
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(first("intermediate_size", "n_inner", default=4 * hidden))
    writer.add_head_count(heads)
    if arch == "gpt2":
        writer.add_layer_norm_eps(cfg.get("layer_norm_epsilon", 1e-5))
        return
    if arch == "gptneox":  # what llama.cpp's loader requires of a GPT-NeoX file
        writer.add_layer_norm_eps(cfg.get("layer_norm_eps", 1e-5))
        writer.add_rope_dimension_count(int(cfg.get("rotary_pct", 1.0) * (hidden // heads)))
        writer.add_rope_freq_base(float(cfg.get("rotary_emb_base", 10000.0)))
        writer.add_parallel_residual(bool(cfg.get("use_parallel_residual", True)))
        return
    experts = first("num_local_experts", "num_experts")
    if experts:
        writer.add_expert_count(experts)
        writer.add_expert_used_count(cfg["num_experts_per_tok"])
        if cfg.get("moe_intermediate_size"):
            writer.add_expert_feed_forward_length(cfg["moe_intermediate_size"])
        if cfg.get("shared_expert_intermediate_size"):
            writer.add_expert_shared_feed_forward_length(cfg["shared_expert_intermediate_size"])
    head_dim = cfg.get("head_dim") or hidden // heads
    writer.add_head_count_kv(cfg.get("num_key_value_heads", heads))
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(cfg.get("rms_norm_eps", 1e-6))
    rope = cfg.get("rope_parameters") or {}
    rope = rope.get("full_attention", rope)
    writer.add_rope_freq_base(float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0))))
    if cfg.get("sliding_window") and (arch.startswith("gemma") or cfg.get("model_type") == "mistral"):
        writer.add_sliding_window(cfg["sliding_window"])  # llama.attention.sliding_window: a mistral
    if arch == "gemma2":
        writer.add_attn_logit_softcapping(cfg["attn_logit_softcapping"])
        writer.add_final_logit_softcapping(cfg["final_logit_softcapping"])
    if rope.get("rope_type") == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(rope["factor"])


def _k_blocks(w):
    import numpy as np

    return np.asarray(w, np.float32).reshape(-1, 256)


def encode_q4_k(w):
    """llama.cpp's Q4_K blocks (256 values: 8 sub-blocks of 32, 6-bit scales and mins, 4-bit codes) for w,
    by a plain min/max rule: the inverse of gguf.quants.Q4_K's dequantization."""
    import numpy as np

    x = _k_blocks(w).reshape(-1, 8, 32)
    lo = np.minimum(x.min(-1), 0)
    step = (x.max(-1) - lo) / 15
    d = (step.max(-1) / 63).astype(np.float16)
    dmin = (-lo.min(-1) / 63).astype(np.float16)
    sc = np.clip(np.round(step / np.maximum(d.astype(np.float32), 1e-30)[:, None]), 0, 63).astype(np.uint8)
    mn = np.clip(np.round(-lo / np.maximum(dmin.astype(np.float32), 1e-30)[:, None]), 0, 63).astype(np.uint8)
    unit = d.astype(np.float32)[:, None] * sc
    offset = dmin.astype(np.float32)[:, None] * mn
    q = np.clip(np.round((x + offset[..., None]) / np.maximum(unit, 1e-30)[..., None]), 0, 15).astype(np.uint8)
    scales = np.concatenate([(sc[:, :4] & 63) | ((sc[:, 4:] >> 4) << 6), (mn[:, :4] & 63) | ((mn[:, 4:] >> 4) << 6),
                             (sc[:, 4:] & 15) | ((mn[:, 4:] & 15) << 4)], axis=1)
    qs = (q[:, 0::2] | (q[:, 1::2] << 4)).reshape(len(x), 128)
    blocks = np.concatenate([d.view(np.uint8).reshape(-1, 2), dmin.view(np.uint8).reshape(-1, 2), scales, qs], axis=1)
    return blocks.reshape(np.asarray(w).shape[0], -1)


def encode_q6_k(w):
    """llama.cpp's Q6_K blocks (256 values: 16 sub-blocks of 16, int8 scales, 6-bit codes) for w: the
    inverse of gguf.quants.Q6_K's dequantization."""
    import numpy as np

    x = _k_blocks(w).reshape(-1, 16, 16)
    step = np.abs(x).max(-1) / 31
    d = (step.max(-1) / 127).astype(np.float16)
    sc = np.clip(np.round(step / np.maximum(d.astype(np.float32), 1e-30)[:, None]), -128, 127).astype(np.int8)
    unit = d.astype(np.float32)[:, None] * sc
    q = (np.clip(np.round(x / np.maximum(unit, 1e-30)[..., None]), -32, 31) + 32).astype(np.uint8).reshape(-1, 8, 32)
    ql = np.empty((len(q), 2, 2, 32), np.uint8)
    qh = np.zeros((len(q), 2, 32), np.uint8)
    for h in range(2):
        for k in range(2):
            ql[:, h, k] = (q[:, h * 4 + k] & 15) | ((q[:, h * 4 + 2 + k] & 15) << 4)
        for j in range(4):
            qh[:, h] |= ((q[:, h * 4 + j] >> 4) & 3) << (2 * j)
    blocks = np.concatenate([ql.reshape(-1, 128), qh.reshape(-1, 64), sc.view(np.uint8),
                             d.view(np.uint8).reshape(-1, 2)], axis=1)
    return blocks.reshape(np.asarray(w).shape[0], -1)


K_ENCODERS = {"Q4_K": encode_q4_k, "Q6_K": encode_q6_k}


def _expand(names: dict[str, str], layers: int) -> dict[str, str]:
    out = {}
    for gguf_name, hf in names.items():
        if "{i}" in gguf_name:
            out.update({gguf_name.format(i=i): hf.replace("{i}", str(i)) for i in range(layers)})
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
