"""Libraries for the seed guide's devices, checked from their bytes (nothing here can run them)."""
import json
import struct
import subprocess
import sys
import tarfile

import pytest

from compiled import build
from llmc.commands.compile import compile_model
from llmc.commands.convert_weight import convert_weight
from llmc.store import Store

DEVICES = "cpu,cuda:sm_80,sm_90,iphone,android,metal,metal:x86-64,webgpu"
# Mach-O libraries link with ld64.lld when it is installed (.ci/run installs Debian's lld), else .tar.
MACHO = ".dylib" if __import__("llmc.graph.fingerprints").graph.fingerprints.which("ld64.lld") else ".tar"
EM_X86_64, EM_AARCH64, EM_CUDA = 62, 183, 190
MACHO_ARM64, MACHO_X86_64 = 0x0100000C, 0x01000007
FATBIN_MAGIC = bytes.fromhex("50ED55BA")


def llmc(*args):
    return subprocess.run([sys.executable, "-m", "llmc", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def device_model(models_dir):
    from tiny_models import make_llama

    return make_llama(models_dir / "device-llama", layers=1)


@pytest.fixture(scope="module")
def model_folder(device_model, session_store, tmp_path_factory):
    return build(device_model, "q4f16_1", tmp_path_factory.mktemp("devices") / "dev-llama-q4f16_1-MLC",
                 session_store)


@pytest.fixture(scope="module")
def libraries(model_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("libs")
    store = Store(tmp_path_factory.mktemp("device-store"))
    result = compile_model(str(model_folder), out, store, device=DEVICES)
    return out, store, result


def files(out):
    return {p.name: p for p in out.iterdir()}


def test_one_library_per_device_named_like_the_seed_guide(libraries):
    out, _, result = libraries
    assert sorted(files(out)) == sorted([
        "dev-llama-q4f16_1-cpu.so", "dev-llama-q4f16_1-cuda_sm_80_sm_90.so", "dev-llama-q4f16_1-iphone.tar",
        "dev-llama-q4f16_1-android.tar", f"dev-llama-q4f16_1-metal{MACHO}", f"dev-llama-q4f16_1-metal_x86_64{MACHO}",
        "dev-llama-q4f16_1-webgpu.tar"])
    assert result.counts["run"] == 7 * 3


def test_the_result_lists_every_device_library(libraries):
    out, store, result = libraries
    assert [b.device for b in result.built] == DEVICES.replace(",sm_90", "+sm_90").split(",")
    assert len({b.manifest for b in result.built}) == len(result.built) and result.manifest is None
    for built in result.built:
        assert built.output.parent == out and store.get_ref(f"compile/{built.output.name}") == built.manifest


def elf_machine(data: bytes) -> int:
    assert data[:4] == b"\x7fELF"
    return struct.unpack_from("<H", data, 18)[0]


def macho(data: bytes) -> tuple[int, int]:
    assert data[:4] == b"\xcf\xfa\xed\xfe", data[:4]
    cpu, _, filetype = struct.unpack_from("<iII", data, 4)
    return cpu, filetype


def members(path):
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def cubin_archs(data: bytes) -> set[int]:
    """SM versions of the CUDA ELF images inside a library's fatbin."""
    start = data.find(FATBIN_MAGIC)
    assert start >= 0, "no fatbin"
    archs, at = set(), start
    while (at := data.find(b"\x7fELF", at + 1)) >= 0:
        if struct.unpack_from("<H", data, at + 18)[0] == EM_CUDA:
            archs.add((struct.unpack_from("<I", data, at + 48)[0] >> 8) & 0xFF)
    return archs


def test_cuda_library_carries_a_fatbin_not_source(libraries):
    data = files(libraries[0])["dev-llama-q4f16_1-cuda_sm_80_sm_90.so"].read_bytes()
    assert elf_machine(data) == EM_X86_64
    assert cubin_archs(data) == {80, 90}
    assert b"__global__" not in data  # nothing left to compile when loading


def test_iphone_and_android_are_static_objects_with_kernels_and_prefix(libraries):
    out = files(libraries[0])
    iphone = members(out["dev-llama-q4f16_1-iphone.tar"])
    assert sorted(iphone) == ["devc.o", "lib0.o"]
    assert all(macho(d) == (MACHO_ARM64, 1) for d in iphone.values())  # MH_OBJECT
    assert b"metal_stdlib" in iphone["devc.o"] and b"kernel void" in iphone["devc.o"]
    assert b"llama_q4f16_1___tvm_ffi__library_bin" in iphone["devc.o"]
    android = members(out["dev-llama-q4f16_1-android.tar"])
    assert all(elf_machine(d) == EM_AARCH64 for d in android.values())
    assert b"__kernel" in android["devc.o"]
    assert b"llama_q4f16_1___tvm_ffi__library_bin" in android["devc.o"]


def test_metal_libraries_have_the_right_architecture(libraries):
    out = files(libraries[0])
    for name, cpu in (("metal", MACHO_ARM64), ("metal_x86_64", MACHO_X86_64)):
        path = out[f"dev-llama-q4f16_1-{name}{MACHO}"]
        if MACHO == ".dylib":
            assert macho(path.read_bytes()) == (cpu, 6)  # MH_DYLIB
            assert b"metal_stdlib" in path.read_bytes()
        else:
            objs = members(path)
            assert all(macho(d) == (cpu, 1) for d in objs.values()) and b"metal_stdlib" in objs["devc.o"]


def test_webgpu_tar_holds_wasm_objects_with_wgsl(libraries):
    webgpu = members(files(libraries[0])["dev-llama-q4f16_1-webgpu.tar"])
    assert all(d[:4] == b"\x00asm" for d in webgpu.values())
    assert b"@compute" in webgpu["devc.o"]


def test_metadata_is_the_same_on_every_device(libraries):
    _, store, _ = libraries
    metas = {}
    for entry in store.iter_actions():
        if entry.provenance.get("stage") == "lower":
            m = store.get_manifest(entry.manifest)
            blob = next(e for e in m if e.path == "metadata.json")
            target = entry.provenance["preimage"]["target"]
            metas[target["kind"] + target.get("host", target)["mtriple"]] = json.loads(store.read_blob(blob.digest))
    assert len(metas) == 7
    usage = {k: m.pop("memory_usage") for k, m in metas.items()}
    first = next(iter(metas.values()))
    assert all(m == first for m in metas.values())
    # CPUs compute in float32 and GPUs in the model's float16, so only the GPUs' buffers agree
    gpu = [u for k, u in usage.items() if not k.startswith("llvm")]
    cpu = [u for k, u in usage.items() if k.startswith("llvm")]
    assert cpu and all(u == gpu[0] for u in gpu)
    assert all(u["prefill"] > gpu[0]["prefill"] for u in cpu)


def test_weights_are_shared_by_every_device(device_model, model_folder, libraries, session_store):
    # Seven libraries later, converting again is a cache hit: the weights were never device-specific.
    again = convert_weight(str(device_model), "q4f16_1", model_folder, session_store)
    assert again.counts == {"run": 0, "cached": 3, "remote": 0}


@pytest.mark.parametrize("device,suffix", [("iphone", ".tar"), ("cuda:sm_80+sm_90", ".so"), ("webgpu", ".tar")])
def test_two_empty_stores_give_identical_device_libraries(model_folder, libraries, tmp_path, device, suffix):
    out = tmp_path / f"lib{suffix}"
    compile_model(str(model_folder), out, Store(tmp_path / "fresh"), device=device)
    tag = device.replace(":", "_").replace("+", "_")
    assert out.read_bytes() == files(libraries[0])[f"dev-llama-q4f16_1-{tag}{suffix}"].read_bytes()


def test_vulkan_is_a_one_line_error(model_folder, tmp_path):
    r = llmc("compile", str(model_folder), "--device", "vulkan", "-o", str(tmp_path / "v.so"), "--store",
             str(tmp_path / "s"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "no SPIR-V code generator" in r.stderr and "USE_VULKAN=ON" in r.stderr


def test_wasm_needs_the_web_runtime(model_folder, tmp_path):
    r = llmc("compile", str(model_folder), "--device", "webgpu", "-o", str(tmp_path / "m.wasm"), "--store",
             str(tmp_path / "s"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "LLMC_WASM_RUNTIME" in r.stderr and "wasm_runtime.bc" in r.stderr
    assert not (tmp_path / "m.wasm").exists()


def test_dylib_without_a_macho_linker_says_so(model_folder, tmp_path, monkeypatch):
    from llmc.graph import fingerprints
    from llmc.errors import NotAvailable

    monkeypatch.setattr(fingerprints, "which", lambda name: None)
    from llmc.stages import link

    monkeypatch.setattr(link, "which", lambda name: None)
    with pytest.raises(NotAvailable, match="ld64.lld .* or a Mac: use -o NAME.tar"):
        compile_model(str(model_folder), tmp_path / "m.dylib", Store(tmp_path / "s"), device="metal")


def test_all_devices_are_checked_before_anything_is_built(model_folder, tmp_path):
    store = Store(tmp_path / "s")
    r = llmc("compile", str(model_folder), "--device", "cpu,vulkan", "-o", str(tmp_path / "out") + "/",
             "--store", str(store.root))
    assert r.returncode == 2
    assert list(store.iter_actions()) == [] and not (tmp_path / "out").exists()


def test_webgpu_warns_about_big_prefill_chunks(model_folder, libraries, tmp_path):
    r = compile_model(str(model_folder), tmp_path / "w.tar", libraries[1], device="webgpu",
                      overrides="prefill_chunk_size=2048")
    assert any("WebGPU" in m and "--prefill-chunk-size 1024" in m for m in r.messages)


def test_every_gpu_library_has_its_kernels_and_they_compile_with_vendor_tools(libraries):
    from llmc.devices import kernel_checks

    for name, path in files(libraries[0]).items():
        modules = kernel_checks.device_modules(path)
        if "-cpu." in name:
            assert modules == []
            continue
        assert len(modules) == 1 and len(modules[0].functions) > 40, name
        assert kernel_checks.check_library(path, ("sm_80", "sm_90")) == [], name
