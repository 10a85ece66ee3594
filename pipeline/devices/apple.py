"""metal, metal:x86-64 (macOS) and iphone: Metal kernels, as source the Metal runtime compiles."""
from __future__ import annotations

from pathlib import Path

from llmc.devices.base import APP_PREFIX, Device
from llmc.devices.gpu import ACTIVATION_DTYPE, SCHEDULES, TOOLS, post_lower  # noqa: F401 - the GPU defaults
from llmc.errors import UserError

NAMES = ("metal", "iphone")
TARGET_KINDS = ("metal",)
HELP = "iphone, metal, metal:x86-64"
TRIPLES = {"metal": "arm64-apple-darwin", "metal:x86-64": "x86_64-apple-darwin", "iphone": "arm64-apple-ios"}


def resolve(name: str, variant: str, host: str | None, cache_dir: Path | None) -> Device:
    if name not in TRIPLES:
        raise UserError(f"unknown device {name!r}; Apple devices: {', '.join(TRIPLES)}")
    target = {"kind": "metal", "host": {"kind": "llvm", "mtriple": host or TRIPLES[name]}}
    if name == "iphone":
        return Device(name, target, (".tar",), ".tar", system_lib_prefix=APP_PREFIX)
    return Device(name, target, (".tar", ".dylib", ".so"), ".dylib")
