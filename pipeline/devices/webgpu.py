"""webgpu: WGSL kernels in wasm objects (a .wasm needs TVM's web runtime and emcc)."""
from __future__ import annotations

from pathlib import Path

from llmc.devices.base import Device
from llmc.errors import UserError

ACTIVATION_DTYPE = None  # the model's dtype, as MLC
# Programs lower runs for this device: their versions key its libraries.
TOOLS = ()
SCHEDULES = "gpu"


def post_lower(out_dir: Path, spec: dict) -> None:
    pass

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
