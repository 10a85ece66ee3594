"""cpu (alias llvm), cpu:generic: this machine's CPU, or another's with --host TRIPLE."""
from __future__ import annotations

from pathlib import Path

from llmc.devices.base import Device
from llmc.devices.host import host_cpu, host_triple
from llmc.errors import UserError

NAMES = ("cpu", "llvm")
TARGET_KINDS = ("llvm",)
HELP = "cpu (alias llvm), cpu:generic"
# x86 has no fast float16 arithmetic: CPU libraries compute activations in float32 whatever the weights.
ACTIVATION_DTYPE = "float32"
# Programs lower runs for this device: their versions key its libraries.
TOOLS = ()
SCHEDULES = "cpu"


def resolve(name: str, variant: str, host: str | None, cache_dir: Path | None) -> Device:
    if variant not in ("", "generic", "native"):
        raise UserError(f"unknown cpu variant {variant!r} in {name!r}; use cpu or cpu:generic")
    triple = host or host_triple()
    native = variant in ("", "native") and host is None
    target = {"kind": "llvm", "mtriple": triple, "mcpu": host_cpu(cache_dir) if native else "generic"}
    if "windows" in triple:
        return Device(name, target, (".dll", ".tar"), ".dll")
    if "apple" in triple or "darwin" in triple:
        return Device(name, target, (".dylib", ".so", ".tar"), ".dylib")
    return Device(name, target, (".so", ".tar"), ".so")


def post_lower(out_dir: Path, spec: dict) -> None:
    pass
