"""llmc's runtime: compiled model libraries run from Python behind an OpenAI-style API."""
from llmc.runtime.engine import MLCEngine
from llmc.runtime.protocol import BadRequestError

__all__ = ["BadRequestError", "MLCEngine"]
