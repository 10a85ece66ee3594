"""Every quantization on one llama (GQA, untied) against transformers running the dequantized weights."""
import json

import numpy as np
import pytest

from compiled import build, hf_greedy, library, rel_error, run_teacher_forced
from weights_io import dequantize_group, read_params

PROMPT = [5, 17, 42, 99, 3, 250, 7, 1, 88, 123, 200, 31, 64, 9, 150, 270]
STEPS = 8
SCHEMES = {  # bits, group, layout
    "q0f16": (None, None, None),
    "q4f16_1": (4, 32, "NK"),
    "q4f32_1": (4, 32, "NK"),
    "q3f16_1": (3, 40, "NK"),
    "q4f16_0": (4, 32, "KN"),
    "q3f16_0": (3, 40, "KN"),
    "q4f16_2": (4, 32, "NK"),     # embedding and lm_head stay float16 (read as plain weights)
    "q3f16_1h8": (3, 40, "NK"),   # embedding and lm_head at 8 bits in groups of 32 (HEAD below)
}
HEAD = {"q3f16_1h8": (8, 32)}
# CPU libraries compute in float32 whatever the weights' dtype, and (q - max_int) * scale is exact
# there: against transformers on the dequantized weights only float32 rounding remains.
TOLERANCE = 1e-4


def unfuse(name: str, w: np.ndarray, cfg: dict) -> dict[str, np.ndarray]:
    if "n_embd" in cfg or "partial_rotary_factor" in cfg:  # gpt2 and phi3 checkpoints are fused too
        return {name: w}
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    for fused in ("qkv_proj.weight", "c_attn.weight", "c_attn.bias"):  # llama's and qwen's names
        if name.endswith(fused):
            q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
            b, kind = name[: -len(fused)], fused.rsplit(".", 1)[1]
            return {f"{b}q_proj.{kind}": w[:q], f"{b}k_proj.{kind}": w[q:q + kv], f"{b}v_proj.{kind}": w[q + kv:]}
    if name.endswith("gate_up_proj.weight"):
        b = name[: -len("gate_up_proj.weight")]
        half = w.shape[0] // 2
        return {b + "gate_proj.weight": w[:half], b + "up_proj.weight": w[half:]}
    return {name: w}


def dequantized_state(folder, bits, group, layout, cfg, head=None) -> dict[str, np.ndarray]:
    params = read_params(folder)
    state = {}
    for name, arr in params.items():
        if name.endswith(".q_scale"):
            continue
        if name.endswith(".q_weight"):
            base = name[: -len(".q_weight")]
            is_head = "embed_tokens" in base or "lm_head" in base
            lay = "NK" if "embed_tokens" in base or (is_head and head) else layout
            k = cfg.get("hidden_size", cfg.get("n_embd")) if is_head else _in_features(base, cfg)
            b, g = head if is_head and head else (bits, group)
            w = dequantize_group(arr, params[base + ".q_scale"], b, g, k, lay)
            state.update(unfuse(base + ".weight", w.astype(np.float32), cfg))
        else:
            state.update(unfuse(name, arr.astype(np.float32), cfg))
    return state


def _in_features(base: str, cfg: dict) -> int:
    if base.endswith(("down_proj", "dense_4h_to_h")):
        return cfg["intermediate_size"]
    if base.endswith("mlp.c_proj"):  # gpt2
        return cfg["n_inner"]
    if "n_embd" in cfg:
        return cfg["n_embd"]
    if base.endswith("o_proj"):
        return cfg["num_attention_heads"] * (cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"])
    return cfg["hidden_size"]


def hf_with(model_dir, state):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the AWQ fixture: run its dequantized weights in float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    tied = ("lm_head.weight",) if config.tie_word_embeddings else ()  # the embedding's own tensor
    assert not unexpected and all("rotary" in m or m in tied for m in missing), (missing, unexpected)
    return model


@pytest.mark.parametrize("quant", sorted(SCHEMES))
def test_quantized_library_matches_dequantized_transformers(quant, tiny_llama, session_store, tmp_path_factory):
    bits, group, layout = SCHEMES[quant]
    folder = build(tiny_llama, quant, tmp_path_factory.mktemp(quant) / "out", session_store)
    cfg = json.loads((folder / "mlc-chat-config.json").read_text())["model_config"]
    if bits is None:
        state = {k: v.astype(np.float32) for k, v in read_params(folder).items()}
        state = {n: w for k, v in state.items() for n, w in unfuse(k, v, cfg).items()}
    else:
        state = dequantized_state(folder, bits, group, layout, cfg, HEAD.get(quant))
    greedy, ref = hf_greedy(hf_with(tiny_llama, state), PROMPT, STEPS)
    ours = run_teacher_forced(library(folder), PROMPT, greedy)
    errors = [rel_error(a, b) for a, b in zip(ours, ref)]
    assert max(errors) <= TOLERANCE, errors
    assert [int(np.argmax(a)) for a in ours] == [int(np.argmax(b)) for b in ref]


@pytest.mark.parametrize("family,variant,quant", [
    ("qwen", "qwen3-qknorm", "q4f16_1"), ("qwen", "qwen2-bias-tied", "q3f16_1"), ("qwen", "qwen3-bias", "q4f16_1"),
    ("gpt_neox", "neox-parallel", "q4f16_1"),  # biases stored float16, added in float32
    ("gpt2", "gpt2-layer-scaled", "q4f16_1"),
    ("gemma", "gemma2-softcap", "q3f16_1"), ("gemma", "gemma3-untied-gqa", "q4f16_1"),
    ("phi3", "phi3-longrope-partial", "q4f32_1"),
])
def test_other_families_quantized_match_dequantized_transformers(family, variant, quant, models_dir, session_store,
                                                                 tmp_path_factory):
    from llmc import families

    tiny = families.tiny_module(getattr(families, family))
    model_dir = tiny.make(models_dir / f"quantized-{variant}", **tiny.VARIANTS[variant])
    bits, group, layout = SCHEMES[quant]
    folder = build(model_dir, quant, tmp_path_factory.mktemp(variant) / "out", session_store)
    cfg = json.loads((folder / "mlc-chat-config.json").read_text())["model_config"]
    state = dequantized_state(folder, bits, group, layout, cfg)
    if "embed_out.weight" in state:  # gpt_neox's head as the checkpoint names it; transformers 5 says lm_head
        state["lm_head.weight"] = state.pop("embed_out.weight")
    for name in [n for n in state if n.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")) and "n_embd" in cfg]:
        state[name] = np.ascontiguousarray(state[name].T)  # gpt2's Conv1D holds [in, out]
    greedy, ref = hf_greedy(hf_with(model_dir, state), PROMPT, STEPS)
    ours = run_teacher_forced(library(folder), PROMPT, greedy)
    errors = [rel_error(a, b) for a, b in zip(ours, ref)]
    assert max(errors) <= TOLERANCE, errors


def test_awq_library_matches_dequantized_transformers(tmp_path_factory, session_store):
    from test_convert_sources import make_awq_checkpoint

    model_dir = tmp_path_factory.mktemp("awq") / "model"
    floats = make_awq_checkpoint(model_dir)
    folder = build(model_dir, "q4f16_awq", model_dir.parent / "out", session_store)
    params = read_params(folder)
    state = {}
    for name, arr in params.items():
        if name.endswith(".weight"):
            state[name] = arr.astype(np.float32)
    for base, w in floats.items():
        state[base + ".weight"] = w.astype(np.float32)  # (q - z) * scale is exact in float32
    greedy, ref = hf_greedy(hf_with(model_dir, state), PROMPT, STEPS)
    ours = run_teacher_forced(library(folder), PROMPT, greedy)
    errors = [rel_error(a, b) for a, b in zip(ours, ref)]
    assert max(errors) <= TOLERANCE, errors
