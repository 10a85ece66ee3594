"""Caller frames for TVMScript's parser without inspect's per-frame module scan.

TVMScript calls `inspect.stack()` for every `@T.prim_func` it parses and `inspect.getouterframes()` for
every `@T.macro` it expands, to look at a few callers' frames (their locals, a decorator's line). inspect
builds a FrameInfo for every frame up the stack, and for each one `getmodule` scans all of sys.modules:
a model export parses its kernels from deep inside nn.Module calls, and those scans were 5.8 s of a
SmolLM2-135M lower (2,821 frames). The frames here carry the same fields, their source line read through
linecache (what inspect ends up reading), without the scan. Only TVMScript's modules see them.
"""
from __future__ import annotations

import importlib
import inspect
import linecache
import sys
import types

# The TVMScript modules that walk caller frames (apache-tvm 0.27).
SCRIPT_MODULES = ("tvm.script.parser.core.parser", "tvm.script.parser.ir.entry", "tvm.tirx.script.parser.entry",
                  "tvm.relax.script.parser.entry", "tvm.tirx.script.builder.ir")


def frame_infos(frame: types.FrameType | None, context: int) -> list[inspect.FrameInfo]:
    """inspect.getouterframes(frame, context) for context 0 or 1, without looking up modules."""
    infos = []
    while frame is not None:
        filename, lineno = frame.f_code.co_filename, frame.f_lineno
        line = linecache.getline(filename, lineno, frame.f_globals) if context else ""
        lines, index = ([line], 0) if line else (None, None)
        infos.append(inspect.FrameInfo(frame, filename, lineno, frame.f_code.co_name, lines, index))
        frame = frame.f_back
    return infos


def _stack(context: int = 1) -> list[inspect.FrameInfo]:
    if context > 1:
        return inspect.getouterframes(sys._getframe(1), context)
    return frame_infos(sys._getframe(1), context)


def _outer_frames(frame: types.FrameType, context: int = 1) -> list[inspect.FrameInfo]:
    if context > 1:
        return inspect.getouterframes(frame, context)
    return frame_infos(frame, context)


class _Inspect(types.ModuleType):
    """inspect, with stack() and getouterframes() from here."""

    stack = staticmethod(_stack)
    getouterframes = staticmethod(_outer_frames)

    def __getattr__(self, name: str):
        return getattr(inspect, name)


def install() -> None:
    """Give TVMScript's frame-walking modules the light frames (idempotent)."""
    shim = _Inspect("inspect")
    for name in SCRIPT_MODULES:
        module = importlib.import_module(name)
        if getattr(module, "inspect", None) is inspect:
            module.inspect = shim
