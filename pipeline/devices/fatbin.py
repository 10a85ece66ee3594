"""Put compiled CUDA kernels (a fatbin) into a library, so loading it needs no compiler.

This TVM stores CUDA modules as C source and compiles them when the library is
loaded (through `tvm_callback_cuda_compile`, i.e. NVRTC or nvcc on the GPU
machine). We compile that source with nvcc at build time instead, for every
requested architecture, and rewrite the module inside the packed library blob
(see library_blob.py) from format "cuda" to format "fatbin".
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

from llmc.devices import library_blob

# What every arch CUDA 13 builds for (sm_75 ... sm_120) allows one block.
REGISTERS_PER_THREAD = 255
REGISTERS_PER_BLOCK = 65536
STATIC_SHARED_PER_BLOCK = 48 * 1024
PTXAS_ENTRY = re.compile(r"Compiling entry function '(\w+)' for '(sm_\d+)'")
PTXAS_SPILLS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores")
PTXAS_USED = re.compile(r"Used (\d+) registers")
PTXAS_SHARED = re.compile(r"(\d+) bytes smem")
LAUNCH_BOUNDS = re.compile(r"__launch_bounds__\((\d+)\)\s+(\w+)\(")


class KernelTooBig(Exception):
    """A kernel that ptxas compiled but no GPU of its arch could launch."""


def ptxas_usage(ptxas_log: str, source: str) -> dict[str, dict]:
    """Per kernel: its threads per block (from __launch_bounds__) and, per arch, what ptxas -v reports."""
    threads = {name: int(n) for n, name in LAUNCH_BOUNDS.findall(source)}
    usage: dict[str, dict] = {}
    current = None
    for line in ptxas_log.splitlines():
        if m := PTXAS_ENTRY.search(line):
            kernel = usage.setdefault(m.group(1), {"threads": threads.get(m.group(1), 0), "archs": {}})
            current = kernel["archs"].setdefault(m.group(2), {})
        elif current is not None and (m := PTXAS_SPILLS.search(line)):
            current.update(stack=int(m.group(1)), spill_stores=int(m.group(2)))
        elif current is not None and (m := PTXAS_USED.search(line)):
            shared = PTXAS_SHARED.search(line)
            current.update(registers=int(m.group(1)), shared=int(shared.group(1)) if shared else 0)
    return usage


def check_usage(usage: dict[str, dict]) -> None:
    """A kernel no block could launch (too many registers or too much shared memory) is a build error."""
    for name, kernel in sorted(usage.items()):
        threads = -(-max(kernel["threads"], 1) // 32) * 32
        for arch, use in sorted(kernel["archs"].items()):
            regs, shared = use.get("registers", 0), use.get("shared", 0)
            if regs > REGISTERS_PER_THREAD or regs * threads > REGISTERS_PER_BLOCK:
                raise KernelTooBig(f"kernel {name} for {arch} needs {regs} registers x {threads} threads, more "
                                   f"than a block has ({REGISTERS_PER_BLOCK})")
            if shared > STATIC_SHARED_PER_BLOCK:
                raise KernelTooBig(f"kernel {name} for {arch} needs {shared} bytes of shared memory, more than "
                                   f"a block has ({STATIC_SHARED_PER_BLOCK})")


def _tool(cmd: list[str], cwd: str) -> subprocess.CompletedProcess:
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise RuntimeError(f"CUDA libraries are compiled with the CUDA toolkit's {cmd[0]}, which is not on "
                           "PATH") from None
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {r.stderr.strip()[-2000:]}")
    return r


def nvcc_fatbin(source: str, archs: tuple[str, ...]) -> tuple[bytes, dict[str, dict]]:
    """The fatbin (SASS per arch, PTX of the newest for GPUs to come) and ptxas's checked per-kernel usage.

    nvcc's own steps, run one by one so that `ptxas -v` reports every kernel without its flag being
    recorded in the fatbin. A fixed-name folder and relative paths keep the bytes independent of where
    it ran."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "kernels.cu").write_text(source)
        images, log = [], []
        for arch in archs:
            sm = arch[3:]
            _tool(["nvcc", "-ptx", "-O3", f"-arch=compute_{sm}", "-o", f"k{sm}.ptx", "kernels.cu"], tmp)
            r = _tool(["ptxas", "-v", "-O3", f"-arch=sm_{sm}", "-o", f"k{sm}.cubin", f"k{sm}.ptx"], tmp)
            log.append(r.stdout + r.stderr)
            images.append(f"--image3=kind=elf,sm={sm},file=k{sm}.cubin")
        newest = max(archs, key=lambda a: int(a[3:]))[3:]
        images.append(f"--image3=kind=ptx,sm={newest},file=k{newest}.ptx")
        _tool(["fatbinary", "--create=kernels.fatbin", "-64", *images], tmp)
        usage = ptxas_usage("\n".join(log), source)
        check_usage(usage)
        return (Path(tmp) / "kernels.fatbin").read_bytes(), usage


def _as_fatbin(module: bytes, archs: tuple[str, ...], usage: dict) -> bytes:
    fmt, functions, source = library_blob.module_parts(module)
    if fmt != b"cuda":
        return module  # already binary
    binary, kernels = nvcc_fatbin(source.decode(), archs)
    usage.update(kernels)
    return library_blob.field(b"fatbin") + functions + library_blob.field(binary)


def embed_fatbins(devc_ll: str, archs: tuple[str, ...], usage: dict | None = None) -> str:
    """devc.ll with every CUDA module of its library blob compiled to a fatbin; `usage` collects ptxas's
    per-kernel report."""
    usage = {} if usage is None else usage
    tree, modules = library_blob.split(library_blob.read(devc_ll))
    modules = [(kind, _as_fatbin(data, archs, usage) if kind == b"cuda" else data) for kind, data in modules]
    return library_blob.replace(devc_ll, library_blob.join(tree, modules))
