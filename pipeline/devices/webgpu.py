"""webgpu: WGSL kernels in wasm objects (a .wasm needs TVM's web runtime and emcc)."""
from __future__ import annotations

from pathlib import Path

from llmc.devices.base import Device
from llmc.devices.gpu import ACTIVATION_DTYPE, SCHEDULES, TOOLS, post_lower  # noqa: F401 - the GPU defaults
from llmc.errors import UserError

NAMES = ("webgpu",)
TARGET_KINDS = ("webgpu",)
HELP = "webgpu"
PREFILL_LIMIT = 1024


def resolve(name: str, variant: str, host: str | None, cache_dir: Path | None) -> Device:
    if variant:
        raise UserError(f"unknown device {name!r}; use {HELP}")
    target = {"kind": "webgpu", "host": {"kind": "llvm", "mtriple": host or "wasm32-unknown-unknown-wasm"}}
    return Device(name, target, (".wasm", ".tar"), ".wasm", prefill_limit=PREFILL_LIMIT,
                  prefill_limit_reason="WebGPU's buffer size limits")
