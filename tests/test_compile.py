"""llmc compile: metadata, caching, reproducibility, options and bad input (tiny llama, CPU)."""
import json
import shutil
import subprocess
import sys
import tarfile

import pytest

from compiled import build
from llmc.commands.compile import compile_model
from llmc.store import Store


def llmc(*args, env=None):
    return subprocess.run([sys.executable, "-m", "llmc", *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def one_layer(models_dir):
    from tiny_models import make_llama

    return make_llama(models_dir / "one-layer", layers=1)


@pytest.fixture(scope="module")
def model_folder(one_layer, session_store, tmp_path_factory):
    return build(one_layer, "q4f16_1", tmp_path_factory.mktemp("compile") / "m-MLC", session_store)


def test_metadata_is_mlc_shaped(model_folder):
    from llmc.runtime.library import ModelLibrary

    meta = ModelLibrary(model_folder / "lib.so", model_folder).metadata
    for key in ("model_type", "quantization", "context_window_size", "sliding_window_size", "prefill_chunk_size",
                "attention_sink_size", "tensor_parallel_shards", "kv_state_kind", "max_batch_size", "params",
                "kv_cache", "memory_usage"):
        assert key in meta, key
    assert meta["model_type"] == "llama" and meta["quantization"] == "q4f16_1"
    assert meta["kv_state_kind"] == "kv_cache" and meta["sliding_window_size"] == -1
    assert meta["kv_cache"] == {"num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
                                "head_dim": 16}
    index = json.loads((model_folder / "tensor-cache.json").read_text())
    stored = {r["name"]: r for shard in index["records"] for r in shard["records"]}
    assert [p["name"] for p in meta["params"]][:2] == ["model.embed_tokens.q_weight", "model.embed_tokens.q_scale"]
    for p in meta["params"]:
        assert stored[p["name"]]["shape"] == p["shape"] and stored[p["name"]]["dtype"] == p["dtype"]
    assert meta["memory_usage"]["prefill"] > 0


def test_library_exports_mlc_functions(model_folder):
    import tvm
    from tvm import relax

    lib = tvm.runtime.load_module(str(model_folder / "lib.so"))
    vm = relax.VirtualMachine(lib, tvm.cpu())
    for name in ("embed", "prefill", "decode", "batch_prefill", "batch_decode", "batch_verify",
                 "create_tir_paged_kv_cache", "softmax_with_temperature", "alloc_embedding_tensor", "_metadata"):
        assert vm[name] is not None, name
    for name in ("apply_logit_bias_inplace", "apply_penalty_inplace", "apply_bitmask_inplace"):
        assert lib.get_function(name, True) is not None, name


def test_softmax_with_temperature(model_folder):
    import numpy as np
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(tvm.runtime.load_module(str(model_folder / "lib.so")), tvm.cpu())
    logits = np.random.default_rng(0).normal(size=(2, 1, 320)).astype(np.float32)
    temp = np.array([0.5, 2.0], np.float32)
    probs = vm["softmax_with_temperature"](tvm.runtime.tensor(logits), tvm.runtime.tensor(temp)).numpy()
    want = np.exp(logits / temp[:, None, None])
    want /= want.sum(-1, keepdims=True)
    assert np.allclose(probs, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("opt", ["O0", "O1", "O2", "O3"])
def test_second_compile_is_cached_without_importing_tvm(opt, model_folder, session_store, tmp_path):
    """O3 too: how the CPU computes int8 dot products is asked of TVM once and remembered in the store."""
    first = tmp_path / "first.so"
    compile_model(str(model_folder), first, session_store, opt=opt)
    code = ("import sys; from pathlib import Path; from llmc.store import Store; "
            "from llmc.commands.compile import compile_model\n"
            f"r = compile_model({str(model_folder)!r}, Path({str(tmp_path / 'again.so')!r}), "
            f"Store({str(session_store.root)!r}), opt={opt!r})\n"
            "print(r.counts['run'], 'tvm' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "False"]
    assert (tmp_path / "again.so").read_bytes() == first.read_bytes()


def test_conversation_and_sampling_settings_do_not_change_the_key(model_folder, session_store, tmp_path):
    other = tmp_path / "other-MLC"
    shutil.copytree(model_folder, other)
    cfg = json.loads((other / "mlc-chat-config.json").read_text())
    cfg["temperature"], cfg["conv_template"]["system_message"] = 0.3, "Be terse."
    (other / "mlc-chat-config.json").write_text(json.dumps(cfg))
    # model_folder's library was compiled at O1 (tests/compiled.build)
    assert compile_model(str(other), tmp_path / "a.so", session_store, opt="O1").counts["run"] == 0
    assert compile_model(str(other), tmp_path / "b.so", session_store, opt="O1",
                         overrides="prefill_chunk_size=32").counts["run"] == 3


def test_a_fine_tune_reuses_the_library(one_layer, model_folder, session_store, tmp_path):
    from safetensors.numpy import load_file, save_file

    tuned = tmp_path / "tuned"
    shutil.copytree(one_layer, tuned)
    state = load_file(tuned / "model.safetensors")
    state = {k: (v * 1.01).astype(v.dtype) for k, v in state.items()}
    save_file(state, str(tuned / "model.safetensors"))
    folder = build(tuned, "q4f16_1", tmp_path / "tuned-MLC", Store(session_store.root))
    assert (folder / "params_shard_0.bin").read_bytes() != (model_folder / "params_shard_0.bin").read_bytes()
    assert (folder / "lib.so").read_bytes() == (model_folder / "lib.so").read_bytes()


@pytest.mark.parametrize("suffix", [".so", ".tar"])
def test_two_empty_stores_give_identical_bytes(model_folder, tmp_path, suffix):
    outs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}{suffix}"
        compile_model(str(model_folder), out, Store(tmp_path / f"store-{name}"))
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    if suffix == ".tar":
        with tarfile.open(tmp_path / "a.tar") as tar:
            members = tar.getmembers()
        assert [m.name for m in members] == ["devc.o", "lib0.o"]  # a system library: its kernels in one part
        assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in members)


def test_cli_compile_and_opt_notes(model_folder, session_store, tmp_path):
    r = llmc("compile", str(model_folder / "mlc-chat-config.json"), "--device", "llvm", "--opt",
             "flashinfer=1;cudagraph=0", "-o", str(tmp_path / "lib.so"), "--store", str(session_store.root))
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert any(line.startswith("note: --opt flashinfer=1 is not available for llvm") for line in lines)
    assert lines[-1].startswith("stages: 0 run, 3 cached")


def test_generic_cpu_target_is_keyed_apart(model_folder, session_store, tmp_path):
    r = compile_model(str(model_folder), tmp_path / "generic.so", session_store, device="cpu:generic")
    assert r.counts["run"] == 3
    lower = [e for e in session_store.iter_actions() if e.provenance.get("stage") == "lower"
             and e.provenance["preimage"]["target"]["mcpu"] == "generic"]
    assert lower


BAD = [
    (lambda f, t: [str(t / "nowhere")], "does not exist"),
    (lambda f, t: [str(f), "--device", "tpu"], "unknown device 'tpu'"),
    (lambda f, t: [str(f), "--overrides", "context_window=5"], "unknown override 'context_window=5'"),
    (lambda f, t: [str(f), "--overrides", "tensor_parallel_shards=2"], "needs multi-GPU support"),
    (lambda f, t: [str(f), "--opt", "O9"], "bad --opt"),
    (lambda f, t: [str(f), "--quantization", "q0f32"], "have no tensor model.embed_tokens.weight"),
    (lambda f, t: [str(f), "--host", "x86_64-pc-windows-msvc", "-o", str(t / "m.dll")], "use -o NAME.tar"),
]


@pytest.mark.parametrize("make_args,message", BAD)
def test_bad_input_is_one_line_exit_2(make_args, message, model_folder, tmp_path):
    args = make_args(model_folder, tmp_path)
    out = ["-o", str(tmp_path / "out.so")] if "-o" not in args else []
    r = llmc("compile", *args, *out, "--store", str(tmp_path / "store"))
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
    assert not (tmp_path / "out.so").exists() and not (tmp_path / "m.dll").exists()


def test_malformed_config_and_bad_suffix(model_folder, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "mlc-chat-config.json").write_text("{not json")
    r = llmc("compile", str(broken), "-o", str(tmp_path / "x.so"), "--store", str(tmp_path / "s"))
    assert r.returncode == 2 and "not valid JSON" in r.stderr
    r = llmc("compile", str(model_folder), "-o", str(tmp_path / "x.exe"), "--store", str(tmp_path / "s"))
    assert r.returncode == 2 and "cannot produce .exe" in r.stderr


def test_an_output_name_with_a_space_and_an_accent_works(model_folder, session_store, tmp_path):
    out = tmp_path / "my libs" / "my modèl.so"
    out.parent.mkdir()
    result = compile_model(str(model_folder), out, session_store)
    assert out.is_file() and session_store.get_ref("compile/my=20mod=C3=A8l.so") == result.manifest
