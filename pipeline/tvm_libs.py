"""TVM's shared libraries through tvm_ffi, without the `tvm` Python package.

Steps that only call into TVM's C++ (ask LLVM about a CPU, turn LLVM IR into an object) load the
libraries the way `tvm.base` does and call TVM's registered functions: 0.4 s, where importing `tvm`
takes 1.6-2 s of a 20 s cold compile. tvm_ffi imports torch eagerly when it is installed; nothing here
hands it a tensor, so torch is hidden while tvm_ffi imports (as in llmc.compiler).
"""
from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path


@functools.cache
def _ffi():
    hidden = "torch" not in sys.modules and "tvm_ffi" not in sys.modules
    if hidden:
        sys.modules["torch"] = None
    try:
        import tvm_ffi
        from tvm_ffi.libinfo import load_lib_ctypes
    finally:
        if hidden:
            del sys.modules["torch"]
    if "tvm" not in sys.modules:
        lib_dir = [Path(importlib.util.find_spec("tvm").submodule_search_locations[0]) / "lib"]
        load_lib_ctypes("tvm", "tvm_runtime", "RTLD_GLOBAL", extra_lib_paths=lib_dir)
        load_lib_ctypes("tvm", "tvm_compiler", "RTLD_LOCAL", extra_lib_paths=lib_dir)
    return tvm_ffi


def function(name: str):
    """A function TVM registered under `name` (e.g. "target.llvm_get_system_cpu")."""
    return _ffi().get_global_func(name)


def write_object(ir: Path, out: Path) -> None:
    """LLVM IR text -> a machine object, with the LLVM that TVM bundles (the GIL is released meanwhile)."""
    _ffi().load_module(str(ir)).write_to_file(str(out))
