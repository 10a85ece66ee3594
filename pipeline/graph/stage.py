"""The stage protocol: what a module in llmc.stages declares, checked when a step is made.

A misspelt attribute must fail loudly, not fall back to a default and build something else.
"""
from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Callable, Protocol, Union

Tools = Union[tuple[str, ...], Callable[[dict, Union[dict, None]], tuple[str, ...]]]


class Stage(Protocol):
    NAME: str            # the stage in keys, refs and progress
    VERSION: str         # bump when the output changes for the same inputs
    DEFAULTS: dict       # every option the stage takes, with its default
    TOOLS: Tools         # tools whose versions key the output; or a function of (options, target)
    EPHEMERAL: bool      # output lives for one command and is never stored (keys use the step's key)

    def run(self, inputs: dict[str, Path], options: dict, out_dir: Path) -> None: ...


ATTRIBUTES = {"NAME": str, "VERSION": str, "DEFAULTS": dict, "EPHEMERAL": bool}


def check(stage: ModuleType) -> None:
    """Raise TypeError naming what a stage module lacks or mistypes."""
    name = getattr(stage, "__name__", repr(stage))
    for attr, kind in ATTRIBUTES.items():
        if not isinstance(getattr(stage, attr, None), kind):
            raise TypeError(f"stage {name} has no {attr} of type {kind.__name__}")
    tools = getattr(stage, "TOOLS", None)
    if not (callable(tools) or (isinstance(tools, tuple) and all(isinstance(t, str) for t in tools))):
        raise TypeError(f"stage {name} has no TOOLS (a tuple of tool names, or a function of options and target)")
    if not callable(getattr(stage, "run", None)):
        raise TypeError(f"stage {name} has no run(inputs, options, out_dir)")
