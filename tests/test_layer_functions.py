"""Decoder layers traced once: like layers share a private Relax function per input shape, and layers that
differ (a windowed Gemma layer and a global one, a GPT-2 layer whose attention scales by its index, the
LongRoPE factors of phi3's *_long functions) do not."""
from __future__ import annotations

import json

import numpy as np
import tvm
from tvm import relax
from tvm.relax.frontend import nn

from llmc import devices, families
from llmc.compiler import layer_functions, lowering

ENTRIES = ("prefill", "decode", "batch_prefill", "batch_decode", "batch_verify")


def _exported(variant: str, tmp_path) -> tvm.IRModule:
    tiny = next(t for t in map(families.tiny_module, families.FAMILIES) if variant in t.VARIANTS)
    hf = json.loads((tiny.make(tmp_path / variant, **tiny.VARIANTS[variant]) / "config.json").read_text())
    model_type = families.detect(hf)
    spec = {"model_type": model_type, "model_config": families.model_config(hf, model_type),
            "quantization": "q0f32", "prefill_chunk_size": 64, "max_batch_size": 4, "active_vocab_size": 0,
            "opt": {}}
    target = {"kind": "llvm"}
    model = lowering.build_model(spec, tvm.target.Target(target), devices.for_target(target))
    mod, _ = model.export_tvm(spec=model.spec())
    return mod


def _layer_calls(mod: tvm.IRModule, entry: str) -> list[str]:
    """The private Relax functions an entry calls, in order."""
    private = {gv.name_hint for gv, f in mod.functions_items()
               if isinstance(f, relax.Function) and "global_symbol" not in (f.attrs or {})}
    return [b.value.op.name_hint for block in mod[entry].body.blocks for b in block.bindings
            if isinstance(b.value, relax.Call) and isinstance(b.value.op, tvm.ir.GlobalVar)
            and b.value.op.name_hint in private]


def test_like_layers_share_one_function_per_input_shape(tmp_path):
    mod = _exported("llama-gqa-untied", tmp_path)
    calls = {entry: _layer_calls(mod, entry) for entry in ENTRIES}
    assert all(len(c) == 2 and len(set(c)) == 1 for c in calls.values()), calls
    # prefill, batch_prefill and batch_verify take [1, seq_len, hidden]; decode [1, 1, hidden]; batch_decode
    # [batch_size, 1, hidden]
    assert calls["prefill"] == calls["batch_prefill"] == calls["batch_verify"]
    assert len({calls["prefill"][0], calls["decode"][0], calls["batch_decode"][0]}) == 3


def test_windowed_and_global_gemma_layers_get_their_own_functions(tmp_path):
    calls = _layer_calls(_exported("gemma3-two-ropes", tmp_path), "prefill")  # windowed, windowed, global
    assert len(calls) == 3 and calls[0] == calls[1] != calls[2]


def test_a_layer_whose_attention_scales_by_its_index_is_not_shared(tmp_path):
    assert _layer_calls(_exported("gpt2-layer-scaled", tmp_path), "prefill") == []
    assert len(_layer_calls(_exported("gpt2-tiny", tmp_path), "prefill")) == 2


def test_longrope_long_functions_trace_their_own_layers(tmp_path):
    mod = _exported("phi3-longrope-partial", tmp_path)
    assert set(_layer_calls(mod, "prefill")).isdisjoint(_layer_calls(mod, "prefill_long"))


class _Scaled(nn.Module):
    def __init__(self, scale, table=None):
        self.scale, self.table = scale, table
        self.weight = nn.Parameter((4,), "float32")


def test_settings_tell_apart_values_and_fall_back_to_identity():
    key = layer_functions.settings
    assert key(_Scaled(0.5)) == key(_Scaled(0.5)) != key(_Scaled(-0.5))
    assert key(_Scaled(1.0, np.arange(3))) != key(_Scaled(1.0, np.arange(1, 4)))
    shared = object()
    assert key(_Scaled(1.0, shared)) == key(_Scaled(1.0, shared)) != key(_Scaled(1.0, object()))


def _extern_calls(func: relax.Function) -> list[str]:
    return [str(b.value.op.global_symbol) for block in func.body.blocks for b in block.bindings
            if isinstance(b.value, relax.Call) and isinstance(b.value.op, relax.ExternFunc)]


def test_layer_functions_skip_argument_checks_but_keep_reading_symbolic_sizes(tmp_path):
    from llmc.compiler import passes

    mod = _exported("llama-gqa-untied", tmp_path)
    target = tvm.target.Target({"kind": "llvm"})
    with tvm.transform.PassContext(opt_level=3):
        lowered = passes.run(mod, passes.optimize({"seq_len": 64, "batch_size": 4}, None) + passes.vm_lowering(),
                             target)
    prefill_layer = _layer_calls(mod, "prefill")[0]
    checks = {"vm.builtin.check_tensor_info", "vm.builtin.check_prim_value_info"}
    assert checks & set(_extern_calls(lowered["prefill"]))  # an exported function checks what it is given
    assert not checks & set(_extern_calls(lowered[prefill_layer]))
    assert "vm.builtin.match_shape" in _extern_calls(lowered[prefill_layer])  # it stores seq_len
