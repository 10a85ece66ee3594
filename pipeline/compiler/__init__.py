"""Everything that imports TVM at compile time: lowering, the Relax pass list, kernels and schedules.

Imported by the lower stage's child and by tests (never on a cache hit)."""
import sys

from llmc.tvm_libs import torch_hidden

if "tvm" not in sys.modules:
    with torch_hidden():
        import tvm  # noqa: F401

from llmc.compiler import script_frames  # noqa: E402

script_frames.install()
