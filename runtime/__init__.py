"""llmc's runtime: compiled model libraries run from Python behind an OpenAI-style API."""
from .engine import Engine, MLCEngine
from .protocol import BadRequestError

__all__ = ["BadRequestError", "Engine", "MLCEngine"]
