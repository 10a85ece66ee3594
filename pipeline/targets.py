"""Devices of `llmc compile --device`, as canonical target dicts, without importing TVM.

A target dict is what the lower/codegen/link keys hold and what TVM's
Target() accepts. The host CPU's LLVM name (what `-mcpu=native` would pick)
is asked of TVM once per machine and remembered in the store.
"""
from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from .errors import NotAvailable, UserError

HOST_TRIPLES = {"x86_64": "x86_64-unknown-linux-gnu", "aarch64": "aarch64-unknown-linux-gnu",
                "arm64": "aarch64-unknown-linux-gnu"}
CPU_ALIASES = ("cpu", "llvm")


@dataclass(frozen=True)
class Device:
    name: str                       # as the user wrote it, e.g. "cpu", "cpu:generic"
    target: dict                    # canonical TVM target (with "host" for GPUs)
    suffixes: tuple[str, ...]       # output kinds this device can produce
    default_suffix: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def triple(self) -> str:
        host = self.target.get("host", self.target)
        return host.get("mtriple", "")


def _host_fingerprint() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    wanted = [ln for ln in lines if ln.startswith(("model name", "flags", "vendor_id", "cpu family", "model\t"))]
    return xxhash.xxh3_64_hexdigest("\n".join(sorted(set(wanted)) + [platform.machine()]).encode())


def host_cpu(cache_dir: Path | None) -> str:
    """LLVM's name for this machine's CPU (e.g. znver4), cached per CPU model in cache_dir."""
    fingerprint = _host_fingerprint()
    cache = cache_dir / "host-cpu.json" if cache_dir is not None else None
    known = {}
    if cache is not None and cache.exists():
        try:
            known = json.loads(cache.read_text())
        except ValueError:
            known = {}
    if fingerprint in known:
        return known[fingerprint]
    import tvm

    cpu = str(tvm.target.codegen.llvm_get_system_cpu())
    if cache is not None:
        known[fingerprint] = cpu
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{fingerprint}.tmp")
            tmp.write_text(json.dumps(known))
            tmp.replace(cache)
        except OSError:
            pass
    return cpu


def host_triple() -> str:
    machine = platform.machine()
    if machine not in HOST_TRIPLES:
        raise NotAvailable(f"no LLVM triple known for this machine ({machine}); pass --host TRIPLE")
    return HOST_TRIPLES[machine]


def resolve(device: str, host: str | None, cache_dir: Path | None) -> Device:
    name = device.strip()
    kind, _, variant = name.partition(":")
    if kind in CPU_ALIASES:
        return _cpu(name, variant, host, cache_dir)
    raise UserError(f"unknown device {name!r}; supported: cpu (alias llvm), cpu:generic")


def _cpu(name: str, variant: str, host: str | None, cache_dir: Path | None) -> Device:
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
