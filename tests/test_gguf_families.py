"""GGUF files of each llama-like family, written as llama.cpp writes them, through llmc against transformers."""
import numpy as np
import pytest

from compiled import build, hf_greedy, library, rel_error, run_teacher_forced
from test_compile_quantized import hf_with

PROMPT = [5, 17, 42, 99, 3, 250, 7, 1, 88, 123, 200, 31, 64, 9, 150, 270]
CASES = [  # (family, tiny variant, GGUF architecture, tensor type)
    ("llama", "llama-gqa-untied", "llama", "Q8_0"),    # llama.cpp's q/k permutation, written and undone
    ("qwen", "qwen2-bias-tied", "qwen2", "F16"),
    ("qwen", "qwen2-bias-tied", "qwen2", "Q5_1"),
    ("qwen", "qwen3-qknorm", "qwen3", "Q8_0"),         # head_dim unlike hidden / heads: from key_length
    ("qwen", "qwen3-bias", "qwen3", "Q4_0"),           # attention_bias found from the biases in the file
]


@pytest.mark.parametrize("family,variant,arch,qtype", CASES, ids=[f"{c[1]}-{c[3]}" for c in CASES])
def test_gguf_of_each_family_matches_transformers(family, variant, arch, qtype, models_dir, session_store,
                                                  tmp_path_factory):
    """transformers runs the float values the file holds (quantized and dequantized by the gguf package
    in the test), in the Hugging Face layout; llmc reads the GGUF itself."""
    from llmc import families
    from llmc.families.tiny import write_gguf

    tiny = families.tiny_module(getattr(families, family))
    model_dir = tiny.make(models_dir / f"gguf-{variant}", **tiny.VARIANTS[variant])
    where = tmp_path_factory.mktemp(f"gguf-{variant}-{qtype}")
    held = write_gguf(model_dir, where / "model.gguf", arch, qtype)
    folder = build(where / "model.gguf", "q0f32", where / "out", session_store)
    greedy, ref = hf_greedy(hf_with(model_dir, {k: v.astype(np.float32) for k, v in held.items()}), PROMPT, 8)
    ours = run_teacher_forced(library(folder), PROMPT, greedy)
    errors = [rel_error(a, b) for a, b in zip(ours, ref)]
    assert max(errors) <= 1e-4, errors
    assert [int(np.argmax(a)) for a in ours] == [int(np.argmax(b)) for b in ref]


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


def test_a_gpt2_gguf_is_refused_by_name(tmp_path, capsys):
    import gguf

    from llmc import cli

    writer = gguf.GGUFWriter(str(tmp_path / "gpt2.gguf"), "gpt2")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    code = cli.run(["convert_weight", str(tmp_path / "gpt2.gguf"), "--quantization", "q0f32", "-o",
                    str(tmp_path / "out"), "--store", str(tmp_path / "store")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "gpt2 GGUF files is not supported yet" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()
