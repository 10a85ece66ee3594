"""GGUF files of each llama-like family, written as llama.cpp writes them, through llmc against transformers."""
import numpy as np
import pytest

from compiled import build, hf_greedy, library, rel_error, run_teacher_forced
from test_compile_quantized import hf_with

PROMPT = [5, 17, 42, 99, 3, 250, 7, 1, 88, 123, 200, 31, 64, 9, 150, 270]
# Rows of whole 256-value blocks, so K-quant weights stay K-quant (llama.cpp falls back to Q8_0 otherwise).
K_SHAPE = dict(hidden=256, heads=4, kv_heads=2, inter=256)
FAMILIES = [  # (family, tiny variant, GGUF architecture, extra shape for K-quant rows): what each checks
    ("llama", "llama-gqa-untied", "llama", {}),           # llama.cpp's q/k permutation, written and undone
    ("qwen", "qwen2-bias-tied", "qwen2", {}),             # biases on q/k/v
    ("qwen", "qwen3-qknorm", "qwen3", {"head_dim": 64}),  # head_dim unlike hidden / heads: from key_length
    ("gemma", "gemma2-softcap", "gemma2", {"head_dim": 64}),  # norms stored as 1 + w, soft-caps from metadata
    ("gemma", "gemma3-gguf", "gemma3", {"head_dim": 64}),
    ("gpt2", "gpt2-tiny", "gpt2", {"inter": None}),       # Conv1D weights stored transposed
    ("phi3", "phi3-plain-gqa", "phi3", {}),               # qkv and gate_up stored fused
]
CASES = [(f, v, {}, a, "F16") for f, v, a, _ in FAMILIES] + [
    (f, v, {**K_SHAPE, **k}, a, t) for f, v, a, k in FAMILIES for t in ("Q4_K", "Q6_K")] + [
    ("llama", "llama-gqa-untied", {}, "llama", "Q8_0"),
    ("qwen", "qwen2-bias-tied", {}, "qwen2", "Q5_1"),
    ("qwen", "qwen3-bias", {}, "qwen3", "Q4_0"),           # attention_bias found from the biases in the file
    ("gemma", "gemma3-gguf", {}, "gemma3", "BF16"),
]
# llama.cpp's gemma3 files carry no layer pattern or local base: its graph fixes every 6th layer full and
# the local base at 10000, and scales queries by head_dim^-0.5 (no query_pre_attn_scalar); a model made so.
EXTRA_VARIANTS = {"gemma3-gguf": dict(model_type="gemma3", window=8, layers=6, pattern=6, pre_attn_scalar=None)}


def _make(family, variant, shape, models_dir):
    from llmc import families

    tiny = families.tiny_module(getattr(families, family))
    spec = {**(tiny.VARIANTS[variant] if variant in tiny.VARIANTS else EXTRA_VARIANTS[variant]), **shape}
    spec = {k: v for k, v in spec.items() if v is not None and not (family == "gpt2" and k in ("inter", "kv_heads"))}
    if family == "gemma" and "pre_attn_scalar" not in spec:
        spec["pre_attn_scalar"] = None  # GGUF has no query_pre_attn_scalar: llama.cpp uses head_dim
    tag = "-".join(f"{k}{v}" for k, v in sorted(shape.items()))
    return tiny.make(models_dir / f"gguf-{variant}{tag}", **spec)


@pytest.mark.parametrize("family,variant,shape,arch,qtype", CASES,
                         ids=[f"{c[1]}-{c[4]}" + ("-k-shape" if c[2] else "") for c in CASES])
def test_gguf_of_each_family_matches_transformers(family, variant, shape, arch, qtype, models_dir, session_store,
                                                  tmp_path_factory):
    """transformers runs the float values the file holds (quantized and dequantized by the gguf package
    in the test), in the Hugging Face layout; llmc reads the GGUF itself."""
    from llmc.families.tiny import write_gguf

    model_dir = _make(family, variant, shape, models_dir)
    where = tmp_path_factory.mktemp(f"gguf-{variant}-{qtype}")
    held = write_gguf(model_dir, where / "model.gguf", arch, qtype)
    folder = build(where / "model.gguf", "q0f32", where / "out", session_store)
    greedy, ref = hf_greedy(hf_with(model_dir, {k: v.astype(np.float32) for k, v in held.items()}), PROMPT, 8)
    ours = run_teacher_forced(library(folder), PROMPT, greedy)
    errors = [rel_error(a, b) for a, b in zip(ours, ref)]
    assert max(errors) <= 1e-4, errors
    for step, (a, b) in enumerate(zip(ours, ref)):  # the same token unless transformers' top two tie within 1e-4
        top2 = np.sort(b)[-2:]
        assert int(np.argmax(a)) == int(np.argmax(b)) or top2[1] - top2[0] <= 1e-4 * np.abs(b).max(), step


def test_transformers_own_reading_of_a_qwen2_gguf_agrees(models_dir, session_store, tmp_path):
    """The oracle we did not write: transformers' GGUF loader on the same file."""
    import torch
    from transformers import AutoModelForCausalLM

    from llmc.families.qwen import tiny
    from llmc.families.tiny import write_gguf

    model_dir = tiny.make(models_dir / "gguf-own-qwen2", **tiny.VARIANTS["qwen2-bias-tied"])
    write_gguf(model_dir, tmp_path / "model.gguf", "qwen2", "F16")
    folder = build(tmp_path / "model.gguf", "q0f32", tmp_path / "out", session_store)
    theirs = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="model.gguf", dtype=torch.float32).eval()
    greedy, ref = hf_greedy(theirs, PROMPT, 8)
    ours = run_teacher_forced(library(folder), PROMPT, greedy)
    assert max(rel_error(a, b) for a, b in zip(ours, ref)) <= 1e-4
