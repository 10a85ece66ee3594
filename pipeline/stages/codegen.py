"""codegen: LLVM IR -> machine objects, with the LLVM that TVM bundles."""
from __future__ import annotations

from pathlib import Path

NAME = "codegen"
VERSION = "1"
TOOLS = ("tvm",)
DEFAULTS = {}


def run(inputs: dict[str, Path], options: dict, out_dir: Path) -> None:
    import tvm

    lowered = inputs["lowered"]
    for ir in sorted(lowered.glob("*.ll")):
        tvm.runtime.load_module(str(ir)).write_to_file(str(out_dir / f"{ir.stem}.o"))
