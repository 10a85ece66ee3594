"""android: aarch64 objects with OpenCL kernels (as source), for static linking into an app."""
from __future__ import annotations

from pathlib import Path

from llmc.devices.base import APP_PREFIX, Device
from llmc.devices.gpu import ACTIVATION_DTYPE, SCHEDULES, TOOLS, post_lower  # noqa: F401 - the GPU defaults
from llmc.errors import UserError

NAMES = ("android",)
TARGET_KINDS = ("opencl",)
HELP = "android"


def resolve(name: str, variant: str, host: str | None, cache_dir: Path | None) -> Device:
    if variant:
        raise UserError(f"unknown device {name!r}; use {HELP}")
    target = {"kind": "opencl", "host": {"kind": "llvm", "mtriple": host or "aarch64-linux-android"}}
    return Device(name, target, (".tar",), ".tar", system_lib_prefix=APP_PREFIX)
