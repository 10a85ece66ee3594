"""vulkan: refused with the missing piece named (this TVM wheel has no SPIR-V code generator)."""
from __future__ import annotations

from pathlib import Path

from llmc.errors import NotAvailable

NAMES = ("vulkan",)
TARGET_KINDS = ("vulkan",)
HELP = "vulkan"


def resolve(name: str, variant: str, host: str | None, cache_dir: Path | None):
    raise NotAvailable("--device vulkan: the apache-tvm wheel has no SPIR-V code generator "
                       "(target.build.vulkan); Vulkan libraries need a TVM built with USE_VULKAN=ON")
