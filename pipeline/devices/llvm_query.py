"""What LLVM says about CPU targets, asked through TVM's libraries (llmc.tvm_libs) without importing
`tvm`: a compile asks these first on a machine whose answers devices/host.py has not remembered yet."""
from __future__ import annotations

from llmc import tvm_libs

# A CPU computes int8 dot products (the O2/O3 kernels of compiler/int8_matmul.py) with any one of these
# feature sets, as LLVM names them.
INT8_DOT_FEATURES = (("avx512vnni", "avx512vl"), ("avxvnni",))


def system_cpu() -> str:
    """LLVM's name for this machine's CPU (what -mcpu=native picks), e.g. znver4."""
    return str(tvm_libs.function("target.llvm_get_system_cpu")())


def has_int8_dot_product(target: dict) -> bool:
    if target.get("kind") != "llvm":
        return False
    llvm_target = tvm_libs.function("target.Target")(target)
    has = tvm_libs.function("target.target_has_feature")
    return any(all(bool(has(feature, llvm_target)) for feature in features) for features in INT8_DOT_FEATURES)
