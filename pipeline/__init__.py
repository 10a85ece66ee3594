"""llmc: compile LLMs into MLC-format weights, configs and TVM model libraries, and run them.

`from llmc import MLCEngine` is the runtime's engine; it is imported on first use, so the CLI and the
store never pay for it.
"""
from __future__ import annotations

__all__ = ["AsyncMLCEngine", "BadRequestError", "MLCEngine"]


def __getattr__(name: str):
    if name in __all__:
        from llmc import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'llmc' has no attribute {name!r}")
