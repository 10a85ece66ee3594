"""Each new family's smallest real shape lowers for the CPU from its preset: gemma3's head_dim 256 and
262k vocabulary through llmc's attention kernels, phi3.5's LongRoPE (128k positions, 4k original) with its *_long
functions, qwen2.5's 151k vocabulary with a tied head (no weights needed: lower sees only the spec)."""
import json

import pytest

from llmc.commands.compile import compile_spec
from llmc.commands.gen_config import generate_config
from llmc.store import Store


@pytest.mark.parametrize("preset", ["gemma3_1b", "phi3_5_mini", "qwen2_5_0_5b"])
def test_preset_lowers_at_its_real_shape(preset, tmp_path):
    from llmc import devices
    from llmc.compiler.lowering import lower

    generate_config(preset, "q4f16_1", "chatml", tmp_path / "cfg", Store(tmp_path / "store").ensure(),
                    no_tokenizer=True, prefill_chunk_size=64, context_window_size=1024)
    chat = json.loads((tmp_path / "cfg" / "mlc-chat-config.json").read_text())
    spec = compile_spec(chat, {}, None, None)
    device = devices.resolve("cpu", None, tmp_path / "store")
    options = {**spec, "opt": {"cpu_schedules": True}, "system_lib": False, "system_lib_prefix": "", "cuda_archs": []}
    meta = lower(options, device.target, tmp_path)
    parts = sorted(tmp_path.glob("lib*.ll"))
    # two parts dealt by size, and the KV cache's kernels, built while the model traced (compiler.prebuild)
    assert [p.name for p in parts] == ["lib0.ll", "lib1.ll", "lib2.ll"] and len(meta["params"]) == len(spec["params"])
    assert "tree_attn" in parts[2].read_text(errors="replace")
    functions = "".join(p.read_text(errors="replace") for p in parts)
    if preset == "phi3_5_mini":
        assert "batch_decode_long" in (tmp_path / "devc.ll").read_text(errors="replace")
    assert "attention" in functions
    assert "!dbg" not in functions and "#dbg_" not in functions  # codegen's third spent on DWARF nobody reads
