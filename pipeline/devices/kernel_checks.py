"""Checks of the kernels a built GPU library carries, with the vendor tools this machine can have.

- CUDA: `cuobjdump` (PyPI `nvidia-cuda-cuobjdump`) lists the fatbin's SASS per arch and its PTX; every
  kernel of the module's function table must be in each. (Registers and shared memory are checked at
  build time, from `ptxas -v`: see fatbin.py.)
- OpenCL (android): Debian's `clang -x cl` compiles the OpenCL C to SPIR.
- WGSL (webgpu): wgpu (PyPI `wgpu`: wgpu-native, whose naga is the WGSL compiler of Firefox and
  wgpu) on Mesa's CPU Vulkan driver (Debian `mesa-vulkan-drivers`) parses, validates and builds a
  compute pipeline for every kernel under WebGPU's default limits.
- Metal: no Metal compiler runs off macOS; the build's loop check (compiler/gpu.py) is all.

Libraries are read as bytes (a .so, a .dylib, or a .tar of objects): each device module is found by its
length-prefixed kind inside the packed library blob (library_blob.py). Module layouts, as TVM saves them:
cuda and opencl: format, function table, data; metal: format, function table, source per kernel;
webgpu: function table, source per kernel.
"""
from __future__ import annotations

import re
import struct
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from llmc.devices import library_blob
from llmc.errors import NotAvailable
from llmc.graph.fingerprints import which


@dataclass(frozen=True)
class DeviceModule:
    kind: str                   # cuda, opencl, metal, webgpu
    fmt: str                    # fatbin, cl, metal, wgsl
    functions: list[str]        # kernel names, from the module's function table
    data: bytes = b""           # cuda and opencl: the fatbin or the source
    sources: dict[str, str] = field(default_factory=dict)   # metal and webgpu: source per kernel


def parse_module(kind: bytes, module: bytes) -> DeviceModule:
    if kind not in (b"metal", b"webgpu"):
        fmt, table, data = library_blob.module_parts(module)
        names, _ = library_blob.function_table(table, 0)
        return DeviceModule(kind.decode(), fmt.decode(), names, data=data)
    at, fmt = 0, b"wgsl"
    if kind == b"metal":
        fmt, at = library_blob.string(module, 0)
    names, at = library_blob.function_table(module, at)
    sources, count, at = {}, struct.unpack_from("<Q", module, at)[0], at + 8
    for _ in range(count):
        name, at = library_blob.string(module, at)
        source, at = library_blob.string(module, at)
        sources[name.decode()] = source.decode()
    return DeviceModule(kind.decode(), fmt.decode(), names, sources=sources)


def _library_bytes(path: Path) -> list[bytes]:
    if path.suffix == ".tar":
        with tarfile.open(path) as tar:
            return [tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()]
    return [path.read_bytes()]


def device_modules(path: Path) -> list[DeviceModule]:
    found = []
    for data in _library_bytes(path):
        for kind in library_blob.DEVICE_KINDS:
            head = library_blob.field(kind)
            at = data.find(head)
            while at >= 0:
                module, end = library_blob.string(data, at + len(head))
                found.append(parse_module(kind, module))
                at = data.find(head, end)
    return found


# ---- CUDA ------------------------------------------------------------------------------------
def cuobjdump() -> str:
    found = which("cuobjdump")
    if found is None:
        try:
            import nvidia.cu13

            candidate = Path(next(iter(nvidia.cu13.__path__))) / "bin" / "cuobjdump"
            found = str(candidate) if candidate.is_file() else None
        except ImportError:
            found = None
    if found is None:
        raise NotAvailable("listing CUDA kernels needs cuobjdump (the CUDA toolkit, or "
                           "pip install nvidia-cuda-cuobjdump)")
    return found


def _per_arch(listing: str, marker: re.Pattern) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    arch = None
    for line in listing.splitlines():
        if line.startswith("arch = "):
            arch = line.split("=")[1].strip()
            out.setdefault(arch, set())
        elif arch is not None and (m := marker.search(line)):
            out[arch].add(m.group(1))
    return {a: names for a, names in out.items() if names}  # -ptx also prints the ELF images' headers


def cuda_kernels(fatbin: bytes) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(kernels per arch as SASS, kernels per arch as PTX), as cuobjdump lists them."""
    tool = cuobjdump()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernels.fatbin"
        path.write_bytes(fatbin)
        sass = subprocess.run([tool, "-res-usage", str(path)], capture_output=True, text=True, check=True).stdout
        ptx = subprocess.run([tool, "-ptx", str(path)], capture_output=True, text=True, check=True).stdout
    return (_per_arch(sass, re.compile(r"^\s*Function (\w+):")),
            _per_arch(ptx, re.compile(r"\.entry (\w+)\(")))


def check_cuda(module: DeviceModule, archs: tuple[str, ...]) -> list[str]:
    if module.fmt != "fatbin":
        return [f"the CUDA module holds {module.fmt}, not a fatbin: kernels would compile at load time"]
    sass, ptx = cuda_kernels(module.data)
    want = set(module.functions)
    problems = [f"{arch}: no SASS for {sorted(want - sass.get(arch, set()))[:3]}"
                for arch in archs if want - sass.get(arch, set())]
    if not any(want <= names for names in ptx.values()):
        problems.append(f"no PTX with every kernel (PTX archs: {sorted(ptx)})")
    return problems


# ---- OpenCL ----------------------------------------------------------------------------------
def clang() -> str:
    for name in ("clang", *(f"clang-{v}" for v in range(20, 13, -1))):
        if (found := which(name)) is not None:
            return found
    raise NotAvailable("checking OpenCL C needs clang (Debian: apt-get install clang)")


def check_opencl(source: str) -> list[str]:
    """clang compiles the OpenCL C for SPIR (OpenCL 2.0 with the default header: what Adreno and Mali
    drivers accept); its first errors, or nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "kernels.cl").write_text(source)
        r = subprocess.run([clang(), "-x", "cl", "-cl-std=CL2.0", "-Xclang", "-finclude-default-header",
                            "-target", "spir64", "-emit-llvm", "-c", "-o", "kernels.bc", "kernels.cl"],
                           cwd=tmp, capture_output=True, text=True)
    errors = [line for line in r.stderr.splitlines() if "error:" in line]
    return errors[:3] if r.returncode != 0 else []


# ---- WGSL -------------------------------------------------------------------------------------
_webgpu_device = None


def webgpu_device():
    """A WebGPU device on Mesa's CPU Vulkan driver, with shader-f16 (what MLC's web runtime asks for)."""
    global _webgpu_device
    if _webgpu_device is None:
        import os

        os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())  # Mesa's Vulkan loader asks
        try:
            import wgpu
        except ImportError:
            raise NotAvailable("checking WGSL needs wgpu (pip install wgpu)") from None
        adapter = wgpu.gpu.request_adapter_sync(force_fallback_adapter=True)
        if adapter is None or "shader-f16" not in adapter.features:
            raise NotAvailable("checking WGSL needs a Vulkan driver with float16 shaders, such as Mesa's "
                               "llvmpipe (Debian: apt-get install mesa-vulkan-drivers)")
        _webgpu_device = adapter.request_device_sync(required_features=["shader-f16"])
    return _webgpu_device


def check_wgsl(sources: dict[str, str]) -> list[str]:
    """naga parses and validates each kernel and the driver builds its compute pipeline."""
    device, problems = webgpu_device(), []
    for name, code in sources.items():
        try:
            shader = device.create_shader_module(code=code)
            device.create_compute_pipeline(layout="auto", compute={"module": shader, "entry_point": name})
        except Exception as exc:  # noqa: BLE001 - wgpu raises its own error kinds; each is a finding
            problems.append(f"{name}: {' '.join(str(exc).split())[:300]}")
    return problems[:3]


def check_library(path: Path, cuda_archs: tuple[str, ...] = ()) -> list[str]:
    """Problems the vendor tools find in a library's kernels (empty: none found). Checks what this
    machine can: CUDA, OpenCL and WGSL; Metal modules are only checked for a source per kernel."""
    modules = device_modules(path)
    problems = []
    for module in modules:
        if not module.functions:
            problems.append(f"{module.kind} module without kernels")
        if module.kind == "cuda":
            problems += check_cuda(module, cuda_archs)
        elif module.kind == "opencl":
            problems += check_opencl(module.data.decode())
        elif set(module.sources) != set(module.functions):
            problems.append(f"{module.kind}: kernels without source")
        elif module.kind == "webgpu":
            problems += check_wgsl(module.sources)
    return problems
