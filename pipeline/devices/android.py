"""android: aarch64 objects with OpenCL kernels (as source), for static linking into an app."""
from __future__ import annotations

from pathlib import Path

from llmc.devices.base import APP_PREFIX, Device
from llmc.errors import UserError

ACTIVATION_DTYPE = None  # the model's dtype, as MLC
# Programs lower runs for this device: their versions key its libraries.
TOOLS = ()
SCHEDULES = "gpu"


def post_lower(out_dir: Path, spec: dict) -> None:
    pass

NAMES = ("android",)
TARGET_KINDS = ("opencl",)
HELP = "android"


def resolve(name: str, variant: str, host: str | None, cache_dir: Path | None) -> Device:
    if variant:
        raise UserError(f"unknown device {name!r}; use {HELP}")
    target = {"kind": "opencl", "host": {"kind": "llvm", "mtriple": host or "aarch64-linux-android"}}
    return Device(name, target, (".tar",), ".tar", system_lib_prefix=APP_PREFIX)
