"""Everything that imports TVM at compile time: lowering, the Relax pass list, kernels and schedules.

Imported by the lower and codegen stages only (never on a cache hit)."""
import sys

# tvm_ffi imports torch eagerly when it is installed (2.8 s of a cold compile here; torch is in every
# environment that has transformers). Compiling never hands TVM a torch tensor, so when this package
# is what first imports TVM, torch is hidden for that import only and imports normally afterwards.
if "tvm" not in sys.modules and "torch" not in sys.modules:
    sys.modules["torch"] = None
    try:
        import tvm  # noqa: F401
    finally:
        del sys.modules["torch"]

from llmc.compiler import script_frames  # noqa: E402

script_frames.install()
