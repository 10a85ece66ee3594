"""GPU builds at shapes that crashed or broke TVM, their kernels checked with vendor tools, and a crash in
lower reported in one line. The full matrix (every family x quantization x GPU device, and SmolLM2) is
scripts/gpu_matrix.py; this is its representative subset."""
import subprocess
import sys

import pytest

from llmc.commands.compile import compile_model
from llmc.devices import fatbin, kernel_checks
from llmc.graph import isolated

CRASH_LOWER = "llmc.stages.lower:lower_here"


def llmc(*args, env=None):
    return subprocess.run([sys.executable, "-m", "llmc", *args], capture_output=True, text=True, env=env)


def converted(make, name, quant, root, store, **shape):
    from llmc.commands.convert_weight import convert_weight
    from llmc.commands.gen_config import generate_config

    model, out = make(root / name, layers=1, **shape), root / f"{name}-{quant}"
    convert_weight(str(model), quant, out, store)
    generate_config(str(model), quant, "chatml", out, store, prefill_chunk_size=256, context_window_size=1024)
    return out


@pytest.fixture(scope="module")
def segfault_shape(session_store, tmp_path_factory):
    """The tiny llama that made dlight's tensor-core matmul segfault TVM (hidden 128, intermediate 320)."""
    from tiny_models import make_llama

    return converted(make_llama, "llama-h128", "q4f16_1", tmp_path_factory.mktemp("gpu"), session_store,
                     hidden=128, inter=320, heads=8, kv_heads=2, vocab=49152)


@pytest.fixture(scope="module")
def odd_shape(session_store, tmp_path_factory):
    """Hidden 96 (not a multiple of 64), 3 query heads on 1 KV head, Qwen's 151936-token vocabulary: TIR's
    CSE broke TVM's tree-attention kernel here."""
    from tiny_models import make_llama

    return converted(make_llama, "llama-h96", "q3f16_1", tmp_path_factory.mktemp("gpu"), session_store,
                     hidden=96, inter=224, heads=3, kv_heads=1, vocab=151936, tied=True)


@pytest.fixture(scope="module")
def neox_shape(session_store, tmp_path_factory):
    from tiny_models import make_neox

    return converted(make_neox, "neox-h160", "q4f32_1", tmp_path_factory.mktemp("gpu"), session_store,
                     hidden=160, inter=416, heads=5, vocab=1000, rotary_pct=0.25)


def test_cuda_builds_the_shape_that_segfaulted_with_sass_per_arch_and_ptx(segfault_shape, session_store):
    lib = segfault_shape / "cuda.so"
    compile_model(str(segfault_shape), lib, session_store, device="cuda:sm_80,sm_90")
    (module,) = kernel_checks.device_modules(lib)
    assert module.kind == "cuda" and module.fmt == "fatbin" and len(module.functions) > 40
    sass, ptx = kernel_checks.cuda_kernels(module.data)
    assert sorted(sass) == ["sm_80", "sm_90"] and list(ptx) == ["sm_90"]
    assert all(set(module.functions) == names for names in [*sass.values(), *ptx.values()])
    assert kernel_checks.check_library(lib, ("sm_80", "sm_90")) == []
    assert kernel_checks.check_library(lib, ("sm_80", "sm_86"))[0].startswith("sm_86: no SASS for")


@pytest.mark.parametrize("device, suffix", [("cuda:sm_80", ".so"), ("webgpu", ".tar"), ("android", ".tar"),
                                            ("iphone", ".tar")])
def test_odd_shapes_build_for_every_gpu_and_their_kernels_compile(odd_shape, session_store, device, suffix):
    lib = odd_shape / f"{device.replace(':', '_')}{suffix}"
    compile_model(str(odd_shape), lib, session_store, device=device)
    assert kernel_checks.check_library(lib, ("sm_80",)) == []


@pytest.mark.parametrize("device, suffix", [("android", ".tar"), ("webgpu", ".tar")])
def test_gpt_neox_with_five_heads_builds_and_its_kernels_compile(neox_shape, session_store, device, suffix):
    lib = neox_shape / f"{device}{suffix}"
    compile_model(str(neox_shape), lib, session_store, device=device)
    modules = kernel_checks.device_modules(lib)
    assert len(modules) == 1 and kernel_checks.check_library(lib) == []


def test_the_kernel_checkers_find_broken_kernels(neox_shape, session_store):
    lib = neox_shape / "android.tar"
    compile_model(str(neox_shape), lib, session_store, device="android")
    (opencl,) = kernel_checks.device_modules(lib)
    broken = opencl.data.decode() + "\n__kernel void broken(__global float* a) { a[0] = undefined_name; }\n"
    assert "undeclared identifier 'undefined_name'" in kernel_checks.check_opencl(broken)[0]
    lib = neox_shape / "webgpu.tar"
    compile_model(str(neox_shape), lib, session_store, device="webgpu")
    (webgpu,) = kernel_checks.device_modules(lib)
    name = webgpu.functions[0]
    bad = {name: webgpu.sources[name].replace("@compute", "@compute @workgroup_size(2048)", 1)}
    assert kernel_checks.check_wgsl(bad)[0].startswith(name)


def test_ptxas_reports_every_kernel_and_a_kernel_no_block_can_launch_is_an_error():
    source = ('extern "C" __global__ void __launch_bounds__(128) tile(float* __restrict__ a) {\n'
              "  __shared__ float s[1024];\n  s[threadIdx.x] = a[threadIdx.x];\n  __syncthreads();\n"
              "  a[threadIdx.x] = s[(threadIdx.x + 1) % 128];\n}\n")
    binary, usage = fatbin.nvcc_fatbin(source, ("sm_80", "sm_90"))
    assert binary[:4] == bytes.fromhex("50ED55BA")
    assert usage["tile"]["threads"] == 128 and sorted(usage["tile"]["archs"]) == ["sm_80", "sm_90"]
    assert all(u["shared"] == 4096 and 0 < u["registers"] <= 255 for u in usage["tile"]["archs"].values())
    fatbin.check_usage(usage)
    with pytest.raises(fatbin.KernelTooBig, match="kernel big for sm_80 needs 128 registers x 1024 threads"):
        fatbin.check_usage({"big": {"threads": 1024, "archs": {"sm_80": {"registers": 128, "shared": 0}}}})
    with pytest.raises(fatbin.KernelTooBig, match="65536 bytes of shared memory"):
        fatbin.check_usage({"big": {"threads": 32, "archs": {"sm_90": {"registers": 8, "shared": 65536}}}})


def test_a_kernel_without_its_loops_bound_to_threads_is_refused():
    import tvm
    import tvm.s_tir.dlight as dl
    from tvm import te

    from llmc.compiler import gpu

    n, i64 = tvm.tirx.Var("n", "int64"), lambda v: tvm.tirx.const(v, "int64")  # the models' index type
    a = te.placeholder((n, i64(576)), "float16", name="a")
    w = te.placeholder((i64(960), i64(576)), "float16", name="w")
    k = te.reduce_axis((i64(0), i64(576)), name="k")
    out = te.compute((n, i64(960)), lambda i, j: te.sum(a[i, k].astype("float32") * w[j, k].astype("float32"),
                                                   axis=k), name="matmul")
    mod = tvm.IRModule({"matmul": te.create_prim_func([a, w, out])})
    with pytest.raises(gpu.UnboundLoop, match=r"matmul: loop \w+ over n outside any thread binding"):
        gpu.check_kernels(mod)
    target = tvm.target.Target({"kind": "cuda", "arch": "sm_80"})
    with target:
        scheduled = gpu.schedule_pass(target)(mod)
    gpu.check_kernels(scheduled)
    assert "threadIdx" in scheduled.script() and "tensorize" not in scheduled.script()
    with target:
        serial = dl.ApplyDefaultSchedule(dl.gpu.Fallback())(mod)
    gpu.check_kernels(serial)  # Fallback binds this one: its serial loop is the 576-long reduction


def test_a_crash_inside_lower_is_one_line_exit_1_and_the_other_devices_build(segfault_shape, tmp_path):
    store = tmp_path / "store"
    out = tmp_path / "libs"
    env = {**__import__("os").environ, isolated.CRASH_ENV: f'{CRASH_LOWER}:"cuda"'}
    r = llmc("compile", str(segfault_shape), "--device", "cuda:sm_80,cpu", "-o", f"{out}/", "--store", str(store),
             env=env)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: lower for cuda (sm_80) of llama q4f16_1 crashed inside TVM (SIGSEGV, signal 11); nothing was stored")
    assert "Traceback" not in r.stderr and "built: cpu -> " in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["llama-h128-q4f16_1-cpu.so"]
    verify = llmc("store", "verify", "--store", str(store))
    assert verify.returncode == 0 and "0 problem(s)" in verify.stdout + verify.stderr
    assert not any((store / "tmp").iterdir())
    debug = llmc("compile", str(segfault_shape), "--device", "cuda:sm_80", "-o", str(out / "x.so"), "--store",
                 str(store), "--debug", env=env)
    assert debug.returncode == 1 and "ChildTraceback" in debug.stderr
    # the crash was not cached: without it the same command builds
    again = llmc("compile", str(segfault_shape), "--device", "cuda:sm_80,cpu", "-o", f"{out}/", "--store",
                 str(store))
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in out.iterdir()) == ["llama-h128-q4f16_1-cpu.so", "llama-h128-q4f16_1-cuda_sm_80.so"]
