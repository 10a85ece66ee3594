"""Devices of `llmc compile --device`: one module each, listed in DEVICES; nothing else branches on names.

A device module has NAMES (what --device starts with), TARGET_KINDS (TVM target kinds it builds),
HELP, resolve(name, variant, host, cache_dir) -> Device (a canonical target dict and output suffixes,
built without importing TVM), and for the ones that build: TOOLS (programs lower runs, keyed),
ACTIVATION_DTYPE (None: the model's), SCHEDULES ("cpu" or "gpu"), post_lower(out_dir, spec), and optionally check_here() (a missing tool).
"""
from __future__ import annotations

from pathlib import Path
from types import ModuleType

from llmc.devices import android, apple, cpu, cuda, vulkan, webgpu
from llmc.devices.base import Device
from llmc.devices.host import host_cpu, host_triple, int8_dot_instruction
from llmc.errors import NotAvailable, UserError

DEVICES: tuple[ModuleType, ...] = (cpu, cuda, apple, android, webgpu, vulkan)
KNOWN = ", ".join(d.HELP for d in DEVICES)
# The devices this package's runtime (llmc.runtime) can run libraries on.
RUNS_HERE = ("cpu", "llvm", "auto")


def split_devices(text: str) -> list[str]:
    """'cpu,cuda:sm_80,sm_90,iphone' -> ['cpu', 'cuda:sm_80+sm_90', 'iphone'] (a bare sm_XX extends cuda)."""
    out: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part.startswith("sm_") and out and out[-1].startswith("cuda"):
            out[-1] += ("+" if ":" in out[-1] else ":") + part
        else:
            out.append(part)
    if not out:
        raise UserError("--device is empty")
    return out


def module_for(name: str) -> ModuleType:
    kind = name.strip().partition(":")[0]
    for device in DEVICES:
        if kind in device.NAMES:
            return device
    raise UserError(f"unknown device {name.strip()!r}; supported: {KNOWN}")


def resolve(device: str, host: str | None, cache_dir: Path | None) -> Device:
    name = device.strip()
    _, _, variant = name.partition(":")
    return module_for(name).resolve(name, variant, host, cache_dir)


def for_target(target: dict) -> ModuleType:
    """The device module that builds a canonical target dict (what lower is given)."""
    for device in DEVICES:
        if target["kind"] in device.TARGET_KINDS:
            return device
    raise UserError(f"no device builds TVM target kind {target['kind']!r}")


def check_here(device: Device) -> None:
    """A tool this device's build needs is missing here: NotAvailable naming it."""
    check = getattr(for_target(device.target), "check_here", None)
    if check is not None:
        check()


def require_runnable(device: str) -> None:
    """The one check of the runtime: llmc runs CPU libraries; other devices' libraries are for MLC's runtimes."""
    if device not in RUNS_HERE:
        raise NotAvailable(f"device {device!r}: llmc's runtime runs CPU libraries only "
                           "(GPU and app libraries run in MLC's runtimes)")


__all__ = ["DEVICES", "Device", "KNOWN", "check_here", "for_target", "host_cpu", "host_triple",
           "int8_dot_instruction", "module_for", "require_runnable", "resolve", "split_devices"]
