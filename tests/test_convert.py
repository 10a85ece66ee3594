"""convert_weight: MLC's format, numerics and layouts, cache reuse, and bad input."""
import json
import subprocess
import sys

import numpy as np
import pytest

from llmc.commands.convert_weight import convert_weight
from llmc.store import Store
from weights_io import dequantize_group, fused, hf_state, read_params


def llmc(*args):
    return subprocess.run([sys.executable, "-m", "llmc", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    return Store(tmp_path_factory.mktemp("store"))


def convert(model, quant, out, store, **kw):
    return convert_weight(str(model), quant, out, store, **kw)


def test_q0f32_is_bit_identical(tiny_llama, shared_store, tmp_path):
    convert(tiny_llama, "q0f32", tmp_path / "out", shared_store)
    params, state = read_params(tmp_path / "out"), hf_state(tiny_llama)
    assert "model.layers.0.self_attn.qkv_proj.weight" in params
    assert "lm_head.weight" in params
    for name, arr in params.items():
        ref = fused(state, name)
        assert arr.dtype == np.float32 and np.array_equal(arr, ref), name


def test_q0f16_is_a_numpy_cast(tiny_llama, shared_store, tmp_path):
    convert(tiny_llama, "q0f16", tmp_path / "out", shared_store)
    params, state = read_params(tmp_path / "out"), hf_state(tiny_llama)
    for name, arr in params.items():
        assert arr.dtype == np.float16
        assert np.array_equal(arr, fused(state, name).astype(np.float16)), name


def test_index_has_mlc_fields_and_both_names(tiny_llama, shared_store, tmp_path):
    convert(tiny_llama, "q4f16_1", tmp_path / "out", shared_store)
    a = json.loads((tmp_path / "out" / "tensor-cache.json").read_text())
    b = json.loads((tmp_path / "out" / "ndarray-cache.json").read_text())
    assert a == b
    assert set(a["metadata"]) == {"ParamSize", "ParamBytes", "BitsPerParam"}
    state = hf_state(tiny_llama)
    tensors = [r for shard in a["records"] for r in shard["records"]]
    # MLC (interface/convert_weight.py, _metadata_callback): the tensor count, bytes as a float, and
    # stored bits per element of the source model
    assert a["metadata"]["ParamSize"] == len(tensors)
    assert a["metadata"]["ParamBytes"] == float(sum(r["nbytes"] for r in tensors))
    assert isinstance(a["metadata"]["ParamBytes"], float)
    assert a["metadata"]["BitsPerParam"] == a["metadata"]["ParamBytes"] * 8.0 / sum(v.size for v in state.values())
    shard = a["records"][0]
    assert shard["format"] == "raw-shard" and shard["dataPath"] == "params_shard_0.bin"
    assert shard["nbytes"] == (tmp_path / "out" / "params_shard_0.bin").stat().st_size
    import hashlib

    assert shard["md5sum"] == hashlib.md5((tmp_path / "out" / "params_shard_0.bin").read_bytes()).hexdigest()


@pytest.mark.parametrize("quant,bits,group,dtype,layout", [
    ("q4f16_1", 4, 32, np.float16, "NK"),
    ("q4f32_1", 4, 32, np.float32, "NK"),
    ("q3f16_1", 3, 40, np.float16, "NK"),
    ("q4f16_0", 4, 32, np.float16, "KN"),
    ("q3f16_0", 3, 40, np.float16, "KN"),
])
def test_mlc_mode_round_trips_within_half_a_step(tiny_llama, shared_store, tmp_path, quant, bits,
                                                 group, dtype, layout):
    convert(tiny_llama, quant, tmp_path / "out", shared_store, mode="mlc")
    params, state = read_params(tmp_path / "out"), hf_state(tiny_llama)
    float_names = ["model.embed_tokens.weight", "lm_head.weight",
                   "model.layers.1.self_attn.qkv_proj.weight", "model.layers.0.mlp.down_proj.weight",
                   "model.layers.0.mlp.gate_up_proj.weight", "model.layers.1.self_attn.o_proj.weight"]
    for name in float_names:
        base = name[: -len(".weight")]
        q, scale = params[base + ".q_weight"], params[base + ".q_scale"]
        assert q.dtype == np.uint32 and scale.dtype == dtype
        w = fused(state, name).astype(dtype).astype(np.float64)
        lay = "NK" if "embed_tokens" in name else layout
        deq = dequantize_group(q, scale, bits, group, w.shape[1], lay)
        step = np.repeat((scale.T if lay == "KN" else scale).astype(np.float64), group, axis=1)[:, :w.shape[1]]
        # Half a step, plus the rounding of w / scale + max_int in the model dtype (MLC computes in it).
        slack = 2.0 ** -6 if dtype == np.float16 else 2.0 ** -18
        assert np.all(np.abs(deq - w) <= step * (0.5 + slack)), name
        assert np.abs(deq - w).max() > 0  # really quantized
    # Norms stay float in the model dtype.
    norm = params["model.layers.0.input_layernorm.weight"]
    assert norm.dtype == dtype and np.array_equal(norm, state["model.layers.0.input_layernorm.weight"].astype(dtype))


@pytest.mark.parametrize("quant,bits,group,layout", [("q4f16_1", 4, 32, "NK"), ("q3f16_1", 3, 40, "NK"),
                                                     ("q4f16_0", 4, 32, "KN")])
def test_searched_codes_read_back_closer_than_mlcs(tiny_llama, shared_store, tmp_path, quant, bits, group, layout):
    """The default codes, read by a dequantizer written from the format alone, are nearer the weights than
    MLC's rule for every tensor; they use the format's top code, and negative scales where it helps."""
    convert(tiny_llama, quant, tmp_path / "search", shared_store)
    convert(tiny_llama, quant, tmp_path / "mlc", shared_store, mode="mlc")
    ours, theirs, state = read_params(tmp_path / "search"), read_params(tmp_path / "mlc"), hf_state(tiny_llama)
    top_code_used = negative_scale = False
    for name in ["model.embed_tokens.weight", "lm_head.weight", "model.layers.1.self_attn.qkv_proj.weight",
                 "model.layers.0.mlp.down_proj.weight", "model.layers.0.mlp.gate_up_proj.weight"]:
        base, lay = name[: -len(".weight")], "NK" if "embed_tokens" in name else layout
        w = fused(state, name).astype(np.float16).astype(np.float64)
        errors = {}
        for label, params in (("search", ours), ("mlc", theirs)):
            q, scale = params[base + ".q_weight"], params[base + ".q_scale"]
            errors[label] = np.square(dequantize_group(q, scale, bits, group, w.shape[1], lay) - w).sum()
        assert errors["search"] < errors["mlc"], name
        q = ours[base + ".q_weight"].astype(np.int64)
        top_code_used |= any(((q >> (j * bits)) & ((1 << bits) - 1) == (1 << bits) - 1).any()
                             for j in range(32 // bits))
        negative_scale |= bool((ours[base + ".q_scale"] < 0).any())
    assert top_code_used and negative_scale


def test_int3_layout_uses_ten_values_per_word(tiny_llama, shared_store, tmp_path):
    convert(tiny_llama, "q3f16_1", tmp_path / "out", shared_store)
    params = read_params(tmp_path / "out")
    q = params["model.layers.0.mlp.down_proj.q_weight"]  # K = 128 -> 4 groups of 40 -> 16 words
    assert q.shape == (64, 16)
    assert not np.any(q >> 30)  # the top two bits are unused
    padded = params["model.layers.0.self_attn.o_proj.q_weight"]  # K = 64 -> 2 groups: slots 64..79 pad
    assert padded.shape == (64, 8)
    assert not np.any(padded[:, 6] >> 12) and not np.any(padded[:, 7])  # padding holds q = 0


def reference_quantize(w: np.ndarray, bits: int, group: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """MLC's formula, element by element: cast, scale = max|w| / max_int, round(w / scale + max_int)."""
    max_int = dtype(2 ** (bits - 1) - 1)
    per_word = 32 // bits
    n, k = w.shape
    groups = -(-k // group)
    words = np.zeros((n, groups * group // per_word), np.uint32)
    scales = np.zeros((n, groups), dtype)
    w = w.astype(dtype)
    for i in range(n):
        for g in range(groups):
            chunk = w[i, g * group: (g + 1) * group]
            scale = dtype(np.max(np.abs(chunk)) / max_int)
            scales[i, g] = scale
            for j, x in enumerate(chunk):
                v = np.round(dtype(dtype(x / scale) + max_int))
                v = int(min(max(v, 0), 2 * max_int))
                slot = g * group + j
                words[i, slot // per_word] |= np.uint32(v << ((slot % per_word) * bits))
    return words, scales


@pytest.mark.parametrize("quant,bits,group,dtype", [("q4f16_1", 4, 32, np.float16),
                                                    ("q3f16_1", 3, 40, np.float16),
                                                    ("q4f32_1", 4, 32, np.float32)])
def test_mlc_mode_bits_equal_an_elementwise_reference(tiny_llama, shared_store, tmp_path, quant, bits, group, dtype):
    convert(tiny_llama, quant, tmp_path / "out", shared_store, mode="mlc")
    params, state = read_params(tmp_path / "out"), hf_state(tiny_llama)
    w = state["model.layers.0.self_attn.o_proj.weight"][:8]
    words, scales = reference_quantize(w, bits, group, dtype)
    assert np.array_equal(params["model.layers.0.self_attn.o_proj.q_scale"][:8], scales)
    assert np.array_equal(params["model.layers.0.self_attn.o_proj.q_weight"][:8], words)


def test_safetensors_sharded_and_torch_bin_give_identical_output(tiny_llama, tmp_path, shared_store):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama)
    sharded = tmp_path / "sharded"
    model.save_pretrained(sharded, max_shard_size="40KB")
    assert (sharded / "model.safetensors.index.json").exists()
    binary = tmp_path / "bin"
    binary.mkdir()
    (binary / "config.json").write_bytes((tiny_llama / "config.json").read_bytes())
    torch.save(model.state_dict(), binary / "pytorch_model.bin")

    outs = {}
    for name, src in (("single", tiny_llama), ("sharded", sharded), ("bin", binary)):
        convert(src, "q4f16_1", tmp_path / f"out-{name}", shared_store)
        outs[name] = read_params(tmp_path / f"out-{name}")
    for name in outs["single"]:
        assert np.array_equal(outs["single"][name], outs["sharded"][name]), name
        assert np.array_equal(outs["single"][name], outs["bin"][name]), name


def test_second_conversion_is_a_cache_hit_with_identical_bytes(tiny_llama, tmp_path):
    store = Store(tmp_path / "store")
    first = convert(tiny_llama, "q4f32_1", tmp_path / "a", store)
    second = convert(tiny_llama, "q4f32_1", tmp_path / "b", store)
    assert first.counts["run"] == 3
    assert second.counts == {"run": 0, "cached": 3, "remote": 0}
    assert second.summary.startswith("stages: 0 run, 3 cached")
    for f in (tmp_path / "a").iterdir():
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes()
    assert store.get_ref("convert_weight/b") == first.manifest


def test_existing_output_keeps_other_files(tiny_llama, shared_store, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mlc-chat-config.json").write_text("{}")
    (out / "params_shard_99.bin").write_bytes(b"stale")
    convert(tiny_llama, "q4f16_1", out, shared_store)
    assert (out / "mlc-chat-config.json").read_text() == "{}"
    assert not (out / "params_shard_99.bin").exists()
    assert (out / "tensor-cache.json").exists()


def test_cli_convert_weight_and_dashed_alias(tiny_llama, tmp_path):
    store = tmp_path / "store"
    r = llmc("convert_weight", str(tiny_llama), "--quantization", "q0f16", "-o", str(tmp_path / "a"),
             "--store", str(store))
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("stages: 3 run, 0 cached")
    r = llmc("convert-weight", str(tiny_llama), "--quantization", "q0f16", "--output", str(tmp_path / "b"),
             "--store", str(store), "--device", "cuda")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("stages: 0 run, 3 cached")


def test_preset_with_source(tiny_llama, shared_store, tmp_path):
    from llmc.errors import UserError

    with pytest.raises(UserError, match="has shape"):  # the preset's shapes are a 7B model's
        convert("llama2_7b", "q0f32", tmp_path / "out", shared_store, source=str(tiny_llama))
    with pytest.raises(UserError, match="--source"):
        convert("llama2_7b", "q0f32", tmp_path / "out", shared_store)


def test_q4f16_autoawq_spelling_is_accepted():
    from llmc.quant import scheme

    assert scheme("q4f16_autoawq").name == "q4f16_awq"


def test_output_folders_with_spaces_and_accents_work(tiny_llama, shared_store, tmp_path):
    from llmc.commands.gen_config import generate_config

    out = tmp_path / "my modèl-MLC"
    result = convert(tiny_llama, "q4f16_1", out, shared_store)
    generate_config(str(tiny_llama), "q4f16_1", "chatml", out, shared_store)
    assert (out / "tensor-cache.json").is_file() and (out / "mlc-chat-config.json").is_file()
    assert shared_store.get_ref("convert_weight/my=20mod=C3=A8l-MLC") == result.manifest
    assert shared_store.get_ref("gen_config/my=20mod=C3=A8l-MLC") is not None


def test_shards_quantize_wrote_are_linked_and_other_plans_copied_from_them(tmp_path):
    """quantize writes the tensors straight into the shards of the default plan (shard.ShardWriter), taking
    their md5s; shard links those files. With another plan it copies the tensors' byte ranges out of them
    and hashes what it writes."""
    import hashlib

    from llmc.stages import shard

    sizes, cap = [300, 400, 600, 100, 50, 700], 1000
    rng = np.random.default_rng(3)
    data = [rng.integers(0, 256, size, dtype=np.uint8).tobytes() for size in sizes]
    writer = shard.ShardWriter(tmp_path / "q" / "shards", sizes, cap)
    tensors = []
    for i, blob in enumerate(data):
        file, offset = writer.location(i)
        writer.add(memoryview(blob))
        tensors.append({"name": f"t{i}", "shape": [len(blob)], "dtype": "uint8", "file": file, "offset": offset,
                        "nbytes": len(blob)})
    writer.close()
    (tmp_path / "q" / "tensors.json").write_text(json.dumps(
        {"metadata": {"source_elements": sum(sizes)}, "tensors": tensors, "shards": writer.record()}))
    for name, plan_cap in (("same", cap), ("other", 2000)):
        out = tmp_path / name
        out.mkdir()
        shard.run({"tensors": tmp_path / "q"}, {"max_shard_bytes": plan_cap}, out)
        records = json.loads((out / "tensor-cache.json").read_text())["records"]
        assert len(records) == len(shard.plan(sizes, plan_cap))
        for record in records:
            file = (out / record["dataPath"]).read_bytes()
            assert record["md5sum"] == hashlib.md5(file).hexdigest() and record["nbytes"] == len(file)
            for t in record["records"]:
                assert file[t["byteOffset"]:t["byteOffset"] + t["nbytes"]] == data[int(t["name"][1:])]
            linked = (out / record["dataPath"]).stat().st_nlink > 1
            assert linked == (name == "same")
    assert len(json.loads((tmp_path / "same" / "tensor-cache.json").read_text())["records"]) == 3
    with pytest.raises(AssertionError, match="tensor 0: 5 bytes, the plan says 300"):
        shard.ShardWriter(tmp_path / "x", sizes, cap).add(memoryview(b"12345"))


def test_a_big_source_is_hashed_while_the_steps_run_and_keyed_as_if_hashed_first(tiny_llama, tmp_path,
                                                                                    monkeypatch):
    """convert_weight hashes a source its hash cache does not know on a thread while the stages run under
    provisional keys, then writes the action entries under the real keys: the same entries a store that
    hashed first holds, and a second conversion is all cache hits."""
    import os
    import shutil

    from llmc.graph import runner

    model = tmp_path / "model"
    shutil.copytree(tiny_llama, model)
    for f in model.iterdir():  # old enough for the hash cache to remember (files just written are not)
        os.utime(f, (1.6e9, 1.6e9))
    started = []

    class Spy(runner._Hashing):
        def __init__(self, *args):
            started.append(self)
            super().__init__(*args)

    monkeypatch.setattr(runner, "_Hashing", Spy)
    monkeypatch.setattr(runner, "HASH_WHILE_RUNNING_MIN_BYTES", 0)
    ahead = Store(tmp_path / "ahead")
    first = convert(model, "q4f16_1", tmp_path / "a", ahead)
    hashed = len(started)  # the weights, and the config (a source of its own)
    assert hashed >= 1 and first.counts["run"] == 3
    second = convert(model, "q4f16_1", tmp_path / "b", ahead)
    assert len(started) == hashed and second.counts == {"run": 0, "cached": 3, "remote": 0}
    monkeypatch.setattr(runner, "HASH_WHILE_RUNNING_MIN_BYTES", 1 << 60)
    first_hashed = Store(tmp_path / "first")
    assert convert(model, "q4f16_1", tmp_path / "c", first_hashed).manifest == first.manifest
    assert len(started) == hashed
    actions = lambda store: sorted(p.name for p in store.actions.rglob("*") if p.is_file())  # noqa: E731
    assert actions(ahead) == actions(first_hashed) and len(actions(ahead)) == 2  # load and shard
    for name in actions(ahead):
        assert ahead.get_action(name).manifest == first_hashed.get_action(name).manifest
