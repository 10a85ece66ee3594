"""What LLVM says about CPU targets, asked through TVM's libraries (llmc.tvm_libs) without importing
`tvm`: a compile asks these first on a machine whose answers devices/host.py has not remembered yet."""
from __future__ import annotations

from llmc import tvm_libs

# The instruction the int8 kernels (O2/O3, compiler/int8_matmul.py) compute u8 x s8 dot products with, by the
# feature sets (LLVM's names) that provide it, best first: VNNI's one-instruction dot product, else AVX2's
# VPMADDUBSW + VPMADDWD pair (llama.cpp's path on CPUs without VNNI; same integers for these operands).
VPDPBUSD, VPMADDUBSW = "vpdpbusd", "vpmaddubsw"
INT8_DOT_INSTRUCTIONS = ((VPDPBUSD, ("avx512vnni", "avx512vl")), (VPDPBUSD, ("avxvnni",)),
                         (VPMADDUBSW, ("avx2",)))


def system_cpu() -> str:
    """LLVM's name for this machine's CPU (what -mcpu=native picks), e.g. znver4."""
    return str(tvm_libs.function("target.llvm_get_system_cpu")())


def int8_dot_instruction(target: dict) -> str | None:
    """The best of INT8_DOT_INSTRUCTIONS the target's CPU has, or None (not a CPU, or too old a one)."""
    if target.get("kind") != "llvm":
        return None
    llvm_target = tvm_libs.function("target.Target")(target)
    has = tvm_libs.function("target.target_has_feature")
    return next((name for name, features in INT8_DOT_INSTRUCTIONS
                 if all(bool(has(feature, llvm_target)) for feature in features)), None)
