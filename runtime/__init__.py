"""llmc's runtime: compiled model libraries run from Python behind an OpenAI-style API."""
from llmc.runtime.async_engine import AsyncMLCEngine
from llmc.runtime.engine import MLCEngine
from llmc.runtime.protocol import BadRequestError

__all__ = ["AsyncMLCEngine", "BadRequestError", "MLCEngine"]
