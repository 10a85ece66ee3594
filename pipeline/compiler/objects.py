"""LLVM IR -> machine objects, with the LLVM that TVM bundles (the codegen stage's work)."""
from __future__ import annotations

from pathlib import Path

import tvm


def write_objects(lowered: Path, out_dir: Path) -> None:
    for ir in sorted(lowered.glob("*.ll")):
        tvm.runtime.load_module(str(ir)).write_to_file(str(out_dir / f"{ir.stem}.o"))
