"""codegen: LLVM IR -> machine objects, with the LLVM that TVM bundles, each .ll in its own thread."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

NAME = "codegen"
VERSION = "1"
TOOLS = ("tvm",)
EPHEMERAL = False
DEFAULTS = {}


def run(inputs: dict[str, Path], options: dict, out_dir: Path) -> None:
    from llmc import tvm_libs

    files = sorted(inputs["lowered"].glob("*.ll"))
    with ThreadPoolExecutor(max(1, len(files))) as pool:
        list(pool.map(lambda ir: tvm_libs.write_object(ir, out_dir / f"{ir.stem}.o"), files))
