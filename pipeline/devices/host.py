"""This machine as a compile target: its LLVM triple and CPU name, and what that CPU can do.

Answers that need TVM (LLVM's name for the CPU, its features) are asked once per machine and
remembered in the store's root, so a cache hit never imports TVM.
"""
from __future__ import annotations

import json
import platform
from pathlib import Path

import xxhash

from llmc.errors import NotAvailable

HOST_TRIPLES = {"x86_64": "x86_64-unknown-linux-gnu", "aarch64": "aarch64-unknown-linux-gnu",
                "arm64": "aarch64-unknown-linux-gnu"}


def _host_fingerprint() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    wanted = [ln for ln in lines if ln.startswith(("model name", "flags", "vendor_id", "cpu family", "model\t"))]
    return xxhash.xxh3_64_hexdigest("\n".join(sorted(set(wanted)) + [platform.machine()]).encode())


def _remembered(cache_dir: Path | None, name: str, key: str, ask):
    """ask() once per key, kept in cache_dir/name (a JSON object, replaced atomically)."""
    cache = cache_dir / name if cache_dir is not None else None
    known = {}
    if cache is not None and cache.exists():
        try:
            known = json.loads(cache.read_text())
        except ValueError:
            known = {}
    if key in known:
        return known[key]
    value = ask()
    if cache is not None:
        known[key] = value
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{xxhash.xxh3_64_hexdigest(key.encode())}.tmp")
            tmp.write_text(json.dumps(known))
            tmp.replace(cache)
        except OSError:
            pass
    return value


def host_cpu(cache_dir: Path | None) -> str:
    """LLVM's name for this machine's CPU (e.g. znver4), cached per CPU model in cache_dir."""
    def ask() -> str:
        from llmc.devices import llvm_query

        return llvm_query.system_cpu()

    return _remembered(cache_dir, "host-cpu.json", _host_fingerprint(), ask)


def int8_dot_instruction(target: dict, cache_dir: Path | None) -> str | None:
    """llvm_query.int8_dot_instruction of this CPU target, cached per target in cache_dir."""
    def ask() -> str | None:
        from llmc.devices import llvm_query

        return llvm_query.int8_dot_instruction(target)

    key = json.dumps(target, sort_keys=True)
    return _remembered(cache_dir, "cpu-int8-dot.json", key, ask)


def host_triple() -> str:
    machine = platform.machine()
    if machine not in HOST_TRIPLES:
        raise NotAvailable(f"no LLVM triple known for this machine ({machine}); pass --host TRIPLE")
    return HOST_TRIPLES[machine]


