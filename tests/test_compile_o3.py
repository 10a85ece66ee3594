"""int8-activation matmuls (prefill GEMM, decode GEMV), part of the default --opt O2 (and of O3) on x86 CPUs
with AVX2 or VNNI, against the exact (O1) library of the same weights."""
import numpy as np
import pytest
import tvm

from compiled import build, library, run_teacher_forced
from llmc import devices as targets
from llmc.commands.compile import compile_model, parse_opt
from llmc.compiler import int8_matmul

# Whether this machine's CPU has the int8 dot products the O2 kernels need: without them O2 builds the
# exact kernels, quietly (CI machines come either way).
HOST_INT8 = int8_matmul.dot_instruction(tvm.target.Target(targets.resolve("cpu", None, None).target))

PROMPT = [5, 17, 42, 99, 3, 250, 7, 1, 88, 123, 200, 31, 64, 9, 150, 270]


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module", params=["q4f32_1", "q4f16_1h8"])  # h8: the 8-bit head stays exact
def exact_and_default(request, tiny_llama, session_store, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"o2-{request.param}") / "out"
    build(tiny_llama, request.param, out, session_store, lib_name="lib-O1.so", opt="O1")
    build(tiny_llama, request.param, out, session_store, lib_name="lib-O2.so", opt="O2")
    steps = list(range(30, 300, 9))
    return [run_teacher_forced(library(out, name), PROMPT, steps) for name in ("lib-O1.so", "lib-O2.so")]


def test_default_opt_logits_follow_the_exact_library(exact_and_default):
    exact, fast = exact_and_default
    cosines = [cosine(a, b) for a, b in zip(exact, fast)]
    assert min(cosines) > 0.999, cosines
    agree = np.mean([np.argmax(a) == np.argmax(b) for a, b in zip(exact, fast)])
    assert agree >= 0.8, agree


def test_default_opt_is_the_int8_library_with_int8_dot_products_and_the_exact_one_without(exact_and_default):
    exact, fast = exact_and_default
    differ = max(np.abs(a - b).max() for a, b in zip(exact, fast))
    if HOST_INT8:
        assert differ > 1e-5  # equal logits would mean the int8 kernels were never used
    else:
        assert differ == 0.0  # neither AVX2 nor VNNI: O2 is O1's library


def test_o2_is_o3_and_falls_back_to_exact_kernels_quietly_where_int8_cannot_apply():
    cpu, generic = (targets.resolve(d, None, None) for d in ("cpu", "cpu:generic"))
    if HOST_INT8:
        assert parse_opt("O2", cpu, "q4f16_1") == parse_opt("O3", cpu, "q4f16_1")
    else:
        assert parse_opt("O2", cpu, "q4f16_1") == ({"cpu_schedules": True, "int8_activations": False}, [])
        assert parse_opt("O3", cpu, "q4f16_1")[1]  # O3 names int8 itself: a note says why not here
    assert parse_opt("O1", cpu, "q4f16_1")[0]["int8_activations"] is False
    for device, quant in ((generic, "q4f16_1"), (cpu, "q0f32")):
        assert parse_opt("O2", device, quant) == ({"cpu_schedules": True, "int8_activations": False}, [])
        assert parse_opt("O3", device, quant)[1]  # asked for by name: a note says why not


def test_o3_notes_when_int8_does_not_apply(tiny_llama, session_store, tmp_path):
    folder = build(tiny_llama, "q0f32", tmp_path / "q0f32", session_store)
    result = compile_model(str(folder), tmp_path / "o3.so", session_store, opt="O3")
    assert any("4-bit group quantization" in m and "q0f32" in m for m in result.messages), result.messages
    q4 = build(tiny_llama, "q4f32_1", tmp_path / "q4", session_store)
    result = compile_model(str(q4), tmp_path / "generic.so", session_store, device="cpu:generic",
                           opt="int8_activations=1")
    assert any("AVX2 or VNNI" in m and "generic" in m for m in result.messages), result.messages


@pytest.mark.parametrize("quant", ["q4f16_0", "q3f16_1", "q4f16_awq"])  # 4-bit KN layout, 3-bit, AWQ
def test_o3_is_narrowed_for_quantizations_the_int8_kernels_do_not_read(quant):
    flags, notes = parse_opt("O3", targets.resolve("cpu", None, None), quant)
    assert flags["int8_activations"] is False
    assert any("4-bit group quantization" in n and quant in n for n in notes), notes
