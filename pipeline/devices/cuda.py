"""cuda, cuda:sm_80+sm_90: NVIDIA GPUs, kernels compiled by nvcc into a fatbin inside the library."""
from __future__ import annotations

from pathlib import Path

from llmc.devices.base import Device
from llmc.devices.gpu import ACTIVATION_DTYPE, SCHEDULES  # noqa: F401 - the GPU defaults
from llmc.errors import NotAvailable, UserError

NAMES = ("cuda",)
TARGET_KINDS = ("cuda",)
HELP = "cuda[:sm_XX[+sm_YY]]"
# Programs lower runs for this device: their versions key its libraries.
TOOLS = ("nvcc",)
# CUDA 13's nvcc accepts compute capability 7.5 and newer; without a GPU to ask, build for all of these.
DEFAULT_ARCHS = ("sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "sm_100", "sm_120")


def resolve(name: str, variant: str, host: str | None, cache_dir: Path | None) -> Device:
    archs = tuple(a for a in variant.replace(",", "+").split("+") if a) or DEFAULT_ARCHS
    for arch in archs:
        if not (arch.startswith("sm_") and arch[3:].isdigit()) or int(arch[3:]) < 75:
            raise UserError(f"cuda arch {arch!r} is not usable with CUDA 13 (sm_75 or newer, e.g. sm_80)")
    lowest = min(archs, key=lambda a: int(a[3:]))
    target = {"kind": "cuda", "arch": lowest, "max_shared_memory_per_block": 49152,
              "host": {"kind": "llvm", "mtriple": host or "x86_64-unknown-linux-gnu"}}
    return Device(name, target, (".so", ".tar"), ".so", cuda_archs=tuple(sorted(set(archs), key=lambda a: int(a[3:]))))


def check_here() -> None:
    from llmc.graph.fingerprints import which

    if which("nvcc") is None:
        raise NotAvailable("CUDA libraries carry kernels compiled by nvcc (the CUDA toolkit), which is not on PATH")


def post_lower(out_dir: Path, spec: dict) -> None:
    """This TVM keeps CUDA C in the library and compiles it at load time: compile it now, into a fatbin,
    and keep ptxas's report of every kernel (registers, shared memory, spills per arch) in kernels.json."""
    import json

    from llmc.devices import fatbin

    devc, usage = out_dir / "devc.ll", {}
    devc.write_text(fatbin.embed_fatbins(devc.read_text(), tuple(spec["cuda_archs"]), usage))
    (out_dir / "kernels.json").write_text(json.dumps(usage, indent=1, sort_keys=True) + "\n")
