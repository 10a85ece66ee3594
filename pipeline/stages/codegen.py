"""codegen: LLVM IR -> machine objects, with the LLVM that TVM bundles."""
from __future__ import annotations

from pathlib import Path

NAME = "codegen"
VERSION = "1"
TOOLS = ("tvm",)
EPHEMERAL = False
DEFAULTS = {}


def run(inputs: dict[str, Path], options: dict, out_dir: Path) -> None:
    from llmc.compiler.objects import write_objects

    write_objects(inputs["lowered"], out_dir)
