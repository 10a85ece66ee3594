"""Bad input to convert_weight: one line, exit 2, and nothing in the output folder or the store."""
import json
import shutil
import subprocess
import sys

import pytest

from llmc.store import Store


def llmc(*args):
    return subprocess.run([sys.executable, "-m", "llmc", *args], capture_output=True, text=True)


def copy_model(src, dst):
    shutil.copytree(src, dst)
    return dst


def edit_config(folder, **changes):
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


def drop_tensor(folder, name):
    from safetensors.numpy import load_file, save_file

    state = load_file(folder / "model.safetensors")
    del state[name]
    save_file(state, str(folder / "model.safetensors"))


def broken(kind, tiny_llama, tmp_path):
    m = tmp_path / "model"
    if kind == "no config":
        copy_model(tiny_llama, m)
        (m / "config.json").unlink()
    elif kind == "no weights":
        copy_model(tiny_llama, m)
        (m / "model.safetensors").unlink()
    elif kind == "unknown model type":
        edit_config(copy_model(tiny_llama, m), model_type="bert")
    elif kind == "missing tensor":
        drop_tensor(copy_model(tiny_llama, m), "model.layers.1.mlp.up_proj.weight")
    elif kind == "wrong shape":
        edit_config(copy_model(tiny_llama, m), intermediate_size=96)
    elif kind == "truncated safetensors":
        copy_model(tiny_llama, m)
        data = (m / "model.safetensors").read_bytes()
        (m / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif kind == "corrupt gguf":
        m.mkdir()
        (m / "model.gguf").write_bytes(b"GGUF" + b"\xff" * 100)
        m = m / "model.gguf"
    return m


CASES = {
    "no config": "no config.json",
    "no weights": "no weights found",
    "unknown model type": "unknown model type 'bert'; supported: gemma2, gemma3, gpt2, gpt_neox, llama, mistral, mixtral, phi3, qwen2, qwen2_moe, qwen3, qwen3_moe",
    "missing tensor": "tensor model.layers.1.mlp.up_proj.weight is missing",
    "wrong shape": "has shape",
    "truncated safetensors": "truncated or corrupt",
    "corrupt gguf": "not a readable GGUF file",
}


def assert_clean_failure(r, message, store_dir, out):
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert message in lines[0]
    assert not out.exists()
    store = Store(store_dir)
    assert list(store.iter_actions()) == [] and store.list_refs() == {}
    assert list(store.iter_manifests()) == [] and list(store.iter_blobs()) == []


@pytest.mark.parametrize("kind", sorted(CASES))
def test_bad_model_input(kind, tiny_llama, tmp_path):
    model = broken(kind, tiny_llama, tmp_path)
    out = tmp_path / "out"
    r = llmc("convert_weight", str(model), "--quantization", "q4f16_1", "-o", str(out), "--store",
             str(tmp_path / "store"))
    assert_clean_failure(r, CASES[kind], tmp_path / "store", out)


def test_unknown_quantization_lists_the_known_ones(tiny_llama, tmp_path):
    out = tmp_path / "out"
    r = llmc("convert_weight", str(tiny_llama), "--quantization", "q9f9", "-o", str(out), "--store",
             str(tmp_path / "store"))
    assert_clean_failure(r, "unknown quantization 'q9f9'; known: q0f16, q0f32", tmp_path / "store", out)
    assert "q4f16_1" in r.stderr and "q4f16_autoawq" in r.stderr


def test_unwritable_output(tiny_llama, tmp_path):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "out"
    r = llmc("convert_weight", str(tiny_llama), "--quantization", "q0f32", "-o", str(out), "--store",
             str(tmp_path / "store"))
    assert_clean_failure(r, "is not a folder", tmp_path / "store", out)


def test_existing_output_is_left_as_it_was_on_error(tiny_llama, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "tensor-cache.json").write_text("old")
    model = broken("missing tensor", tiny_llama, tmp_path)
    r = llmc("convert_weight", str(model), "--quantization", "q0f32", "-o", str(out), "--store",
             str(tmp_path / "store"))
    assert r.returncode == 2
    assert sorted(p.name for p in out.iterdir()) == ["tensor-cache.json"]
    assert (out / "tensor-cache.json").read_text() == "old"


def test_torch_checkpoint_without_torch_names_the_missing_piece(tiny_llama, tmp_path):
    import torch
    from safetensors.numpy import load_file

    m = tmp_path / "bin"
    m.mkdir()
    (m / "config.json").write_bytes((tiny_llama / "config.json").read_bytes())
    torch.save({k: torch.from_numpy(v) for k, v in load_file(tiny_llama / "model.safetensors").items()},
               m / "pytorch_model.bin")
    code = ("import sys; sys.modules['torch'] = None\n"
            "from llmc.cli import main\n"
            f"main(['convert_weight', {str(m)!r}, '--quantization', 'q0f32', '-o', {str(tmp_path / 'o')!r},"
            f" '--store', {str(tmp_path / 'store')!r}])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 2
    assert "needs PyTorch" in r.stderr and len(r.stderr.strip().splitlines()) == 1
