"""TVM's shared libraries through tvm_ffi, without the `tvm` Python package.

Steps that only call into TVM's C++ (ask LLVM about a CPU, turn LLVM IR into an object) load the
libraries the way `tvm.base` does and call TVM's registered functions: 0.4 s, where importing `tvm`
takes 1.6-2 s of a 20 s cold compile.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import sys
from pathlib import Path


@contextlib.contextmanager
def torch_hidden():
    """Import TVM (or tvm_ffi) inside this. tvm_ffi imports torch eagerly when it is installed (2.8 s of a
    cold compile; torch is in every environment that has transformers). Compiling never hands TVM a torch
    tensor, so torch is hidden for that import only and imports normally afterwards."""
    hide = "torch" not in sys.modules
    if hide:
        sys.modules["torch"] = None
    try:
        yield
    finally:
        if hide:
            del sys.modules["torch"]


def list_function_names_once() -> None:
    """Importing TVM lists every registered function's name (~5,000) again for each of its 51 API modules:
    0.35 s of the 1.5 s import. The list changes only when a function is registered, so tvm_ffi's listing
    is replaced by one that lists again only when the count of names changed. Call before importing TVM."""
    import tvm_ffi.registry as registry

    functor_factory = registry.get_global_func("ffi.FunctionListGlobalNamesFunctor")
    listed: list = [-1, []]

    def list_global_func_names() -> list[str]:
        functor = functor_factory()
        count = functor(-1)
        if count != listed[0]:
            listed[:] = [count, [functor(i) for i in range(count)]]
        return list(listed[1])

    registry.list_global_func_names = list_global_func_names


@functools.cache
def _ffi():
    with torch_hidden():
        import tvm_ffi
        from tvm_ffi.libinfo import load_lib_ctypes
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
