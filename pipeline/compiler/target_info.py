"""What LLVM says about CPU targets (asked once per machine; llmc.devices.host remembers the answers)."""
from __future__ import annotations

import tvm

from llmc.compiler import int8_matmul


def system_cpu() -> str:
    """LLVM's name for this machine's CPU (what -mcpu=native picks), e.g. znver4."""
    return str(tvm.target.codegen.llvm_get_system_cpu())


def has_int8_dot_product(target: dict) -> bool:
    return bool(int8_matmul.supported(tvm.target.Target(target)))
