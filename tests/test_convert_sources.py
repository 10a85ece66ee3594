"""convert_weight from GGUF (against transformers' loader), AWQ, and its memory bound."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llmc.commands.convert_weight import convert_weight
from llmc.store import Store
from weights_io import fused, read_params


def test_smollm2_gguf_q0f32_equals_what_transformers_loads(smollm2_gguf, smollm2_hf, tmp_path):
    convert_weight(str(smollm2_gguf), "q0f32", tmp_path / "out", Store(tmp_path / "store"))
    ours = read_params(tmp_path / "out")
    state = {k: v.detach().numpy() for k, v in smollm2_hf.state_dict().items()}
    assert "lm_head.weight" not in ours  # tied embeddings: no separate head
    assert len(ours) == 2 + 30 * 6
    for name, arr in ours.items():
        assert np.array_equal(arr, fused(state, name)), name


AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]


def awq_pack(ints: np.ndarray) -> np.ndarray:
    """[rows, cols] of 0..15 -> [rows, cols/8] int32, nibble i holding element AWQ_ORDER[i]."""
    rows, cols = ints.shape
    out = np.zeros((rows, cols // 8), np.uint32)
    for i, element in enumerate(AWQ_ORDER):
        out |= ints[:, element::8].astype(np.uint32) << np.uint32(4 * i)
    return out.view(np.int32)


def awq_unpack(packed: np.ndarray) -> np.ndarray:
    words = packed.view(np.uint32)
    out = np.zeros((words.shape[0], words.shape[1] * 8), np.int64)
    for i, element in enumerate(AWQ_ORDER):
        out[:, element::8] = (words >> (4 * i)) & 0xF
    return out


def make_awq_checkpoint(path: Path) -> dict:
    """A tiny AutoAWQ-layout llama: returns the float weights each packed linear stands for."""
    from safetensors.numpy import save_file

    from tiny_models import make_llama

    make_llama(path, hidden=128, inter=256, heads=4, kv_heads=2, dtype="float16")
    from weights_io import hf_state

    state = hf_state(path)
    rng = np.random.default_rng(0)
    tensors, floats = {}, {}
    for name, w in state.items():
        if not name.endswith("_proj.weight"):
            tensors[name] = w.astype(np.float16)
            continue
        out_f, in_f = w.shape
        base = name[: -len(".weight")]
        q = rng.integers(0, 16, size=(in_f, out_f))
        z = rng.integers(0, 16, size=(in_f // 128, out_f))
        s = (rng.random((in_f // 128, out_f)) * 0.01 + 0.001).astype(np.float16)
        tensors[f"{base}.qweight"] = awq_pack(q)
        tensors[f"{base}.qzeros"] = awq_pack(z)
        tensors[f"{base}.scales"] = s
        floats[base] = ((q - np.repeat(z, 128, axis=0)) * np.repeat(s.astype(np.float64), 128, axis=0)).T
    os.remove(path / "model.safetensors")
    save_file(tensors, str(path / "model.safetensors"))
    cfg = json.loads((path / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True,
                                  "version": "gemm"}
    (path / "config.json").write_text(json.dumps(cfg))
    return floats


def test_awq_checkpoint_converts_to_fused_awq_tensors(tmp_path):
    floats = make_awq_checkpoint(tmp_path / "awq")
    convert_weight(str(tmp_path / "awq"), "q4f16_autoawq", tmp_path / "out", Store(tmp_path / "store"))
    params = read_params(tmp_path / "out")
    base = "model.layers.0.self_attn.qkv_proj"
    assert params[f"{base}.qweight"].shape == (128, (128 + 2 * 64) // 8)
    assert params[f"{base}.qzeros"].shape == (1, 256 // 8) and params[f"{base}.scales"].shape == (1, 256)
    for layer in range(2):
        for fused_name, parts in (("self_attn.qkv_proj", ["self_attn.q_proj", "self_attn.k_proj",
                                                          "self_attn.v_proj"]),
                                  ("mlp.gate_up_proj", ["mlp.gate_proj", "mlp.up_proj"]),
                                  ("mlp.down_proj", ["mlp.down_proj"]), ("self_attn.o_proj", ["self_attn.o_proj"])):
            b = f"model.layers.{layer}.{fused_name}"
            q, z = awq_unpack(params[f"{b}.qweight"]), awq_unpack(params[f"{b}.qzeros"])
            s = params[f"{b}.scales"].astype(np.float64)
            deq = ((q - np.repeat(z, 128, axis=0)) * np.repeat(s, 128, axis=0)).T
            want = np.concatenate([floats[f"model.layers.{layer}.{p}"] for p in parts])
            assert np.array_equal(deq, want), b
    assert params["model.embed_tokens.weight"].dtype == np.float16  # AWQ leaves embeddings float
    assert params["lm_head.weight"].dtype == np.float16


def test_awq_needs_an_awq_checkpoint(tiny_llama, tmp_path):
    from llmc.errors import UserError

    with pytest.raises(UserError, match="AWQ"):
        convert_weight(str(tiny_llama), "q4f16_awq", tmp_path / "out", Store(tmp_path / "store"),
                       source_format="huggingface-safetensor")


MEMORY_PROBE = r"""
import json, sys, threading, time
from pathlib import Path
from llmc.commands.convert_weight import convert_weight
from llmc.store import Store

def anon():  # the resident set, mapped file pages included (the source's pages count until released)
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

base = anon()
peak = [base]
done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], anon())
        time.sleep(0.002)
t = threading.Thread(target=sample); t.start()
convert_weight(sys.argv[1], sys.argv[2], Path(sys.argv[3]), Store(sys.argv[4]))
done.set(); t.join()
print(json.dumps({"rise": peak[0] - base, "tvm": "tvm" in sys.modules, "torch": "torch" in sys.modules}))
"""


@pytest.fixture(scope="module")
def wide_llama(tmp_path_factory):
    from tiny_models import make_llama

    return make_llama(tmp_path_factory.mktemp("wide") / "wide", hidden=512, heads=8, kv_heads=4, inter=2048,
                      layers=24, vocab=16384)


@pytest.fixture(scope="module")
def wide_gguf(wide_llama, tmp_path_factory):
    from llmc.families.tiny import write_gguf

    path = tmp_path_factory.mktemp("wide-gguf") / "wide.f16.gguf"
    write_gguf(wide_llama, path, "llama", "F16", keep=False)
    return path


@pytest.mark.parametrize("quant,source", [("q0f16", "safetensors"), ("q4f16_1", "safetensors"),
                                          ("q4f16_1", "gguf")])
def test_convert_streams_tensors_within_the_memory_bound(wide_llama, wide_gguf, tmp_path, quant, source):
    """The resident set, mapped source pages included, follows the largest tensor, not the model: each
    parameter's pages are released once it is quantized."""
    total = sum(f.stat().st_size for f in wide_llama.glob("*.safetensors"))
    largest = 16384 * 512 * 4
    budget = 3 * largest + (256 << 20)  # issue 22's bound: the interpreter's own growth fits in the 256 MiB
    assert total > budget  # loading everything at once would break the bound
    src = wide_llama if source == "safetensors" else wide_gguf
    r = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(src), quant, str(tmp_path / "out"),
                        str(tmp_path / "store")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["rise"] < budget, f"the resident set rose {result['rise'] >> 20} MiB (budget {budget >> 20})"
    assert not result["tvm"] and not result["torch"]


def test_gguf_header_reads_what_the_gguf_package_reads(smollm2_gguf):
    """llmc's header reader (the gguf package's takes seconds over a vocabulary) against the package's
    own reader on the real SmolLM2 file: every field's value and type, every tensor's place and view."""
    import gguf

    from llmc.sources.gguf_header import GGUFHeader

    ours, theirs = GGUFHeader(smollm2_gguf), gguf.GGUFReader(smollm2_gguf)
    fields = {key: field.contents() for key, field in theirs.fields.items() if not key.startswith("GGUF.")}
    assert len(fields["tokenizer.ggml.tokens"]) == 49152
    assert ours.fields == fields
    assert {k: type(v) for k, v in ours.fields.items()} == {k: type(v) for k, v in fields.items()}
    assert len(ours.tensors) == len(theirs.tensors)
    for a, b in zip(ours.tensors, theirs.tensors):
        assert (a.name, a.tensor_type, a.data_offset, a.n_bytes, a.shape) == \
            (b.name, b.tensor_type, b.data_offset, b.n_bytes, tuple(int(d) for d in b.shape))
        assert a.data.shape == b.data.shape and a.data.dtype == b.data.dtype
        assert np.array_equal(a.data[:2], b.data[:2])
