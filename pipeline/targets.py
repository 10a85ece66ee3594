"""Devices of `llmc compile --device`, as canonical target dicts, without importing TVM.

A target dict is what the lower/codegen/link keys hold and what TVM's
Target() accepts. The host CPU's LLVM name (what `-mcpu=native` would pick)
is asked of TVM once per machine and remembered in the store.
"""
from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path

import xxhash

from .errors import NotAvailable, UserError

HOST_TRIPLES = {"x86_64": "x86_64-unknown-linux-gnu", "aarch64": "aarch64-unknown-linux-gnu",
                "arm64": "aarch64-unknown-linux-gnu"}
CPU_ALIASES = ("cpu", "llvm")


@dataclass(frozen=True)
class Device:
    name: str                       # as the user wrote it, e.g. "cpu", "cuda:sm_80", "metal:x86-64"
    target: dict                    # canonical TVM target (with "host" for GPUs)
    suffixes: tuple[str, ...]       # output kinds this device can produce
    default_suffix: str
    system_lib_prefix: str = ""     # what --system-lib-prefix auto means ("{model_type}_{quantization}_" for apps)
    cuda_archs: tuple[str, ...] = ()

    @property
    def triple(self) -> str:
        host = self.target.get("host", self.target)
        return host.get("mtriple", "")

    @property
    def kind(self) -> str:
        return self.target["kind"]

    @property
    def file_tag(self) -> str:
        """The device in output file names: ':' and '-' become '_' (cuda:sm_80 -> cuda_sm_80)."""
        return self.name.replace(":", "_").replace("-", "_").replace("+", "_")


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


# CUDA 13's nvcc accepts compute capability 7.5 and newer; without a GPU to ask, build for all of these.
DEFAULT_CUDA_ARCHS = ("sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "sm_100", "sm_120")
APP_PREFIX = "{model_type}_{quantization}_"
GPU_HOSTS = {
    "iphone": ("metal", "arm64-apple-ios"),
    "android": ("opencl", "aarch64-linux-android"),
    "metal": ("metal", "arm64-apple-darwin"),
    "metal:x86-64": ("metal", "x86_64-apple-darwin"),
    "webgpu": ("webgpu", "wasm32-unknown-unknown-wasm"),
}
KNOWN = "cpu (alias llvm), cpu:generic, cuda[:sm_XX[+sm_YY]], iphone, android, metal, metal:x86-64, webgpu, vulkan"


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


def resolve(device: str, host: str | None, cache_dir: Path | None) -> Device:
    name = device.strip()
    kind, _, variant = name.partition(":")
    if kind in CPU_ALIASES:
        return _cpu(name, variant, host, cache_dir)
    if kind == "cuda":
        return _cuda(name, variant, host)
    if kind == "vulkan":
        raise NotAvailable("--device vulkan: the apache-tvm wheel has no SPIR-V code generator "
                           "(target.build.vulkan); Vulkan libraries need a TVM built with USE_VULKAN=ON")
    if name in GPU_HOSTS:
        return _gpu(name, host)
    raise UserError(f"unknown device {name!r}; supported: {KNOWN}")


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


def _cuda(name: str, variant: str, host: str | None) -> Device:
    archs = tuple(a for a in variant.replace(",", "+").split("+") if a) or DEFAULT_CUDA_ARCHS
    for arch in archs:
        if not (arch.startswith("sm_") and arch[3:].isdigit()) or int(arch[3:]) < 75:
            raise UserError(f"cuda arch {arch!r} is not usable with CUDA 13 (sm_75 or newer, e.g. sm_80)")
    lowest = min(archs, key=lambda a: int(a[3:]))
    target = {"kind": "cuda", "arch": lowest, "max_shared_memory_per_block": 49152,
              "host": {"kind": "llvm", "mtriple": host or "x86_64-unknown-linux-gnu"}}
    return Device(name, target, (".so", ".tar"), ".so", cuda_archs=tuple(sorted(set(archs), key=lambda a: int(a[3:]))))


def _gpu(name: str, host: str | None) -> Device:
    kind, triple = GPU_HOSTS[name]
    target = {"kind": kind, "host": {"kind": "llvm", "mtriple": host or triple}}
    if name in ("iphone", "android"):
        return Device(name, target, (".tar",), ".tar", system_lib_prefix=APP_PREFIX)
    if name == "webgpu":
        return Device(name, target, (".wasm", ".tar"), ".wasm")
    return Device(name, target, (".tar", ".dylib", ".so"), ".dylib")
