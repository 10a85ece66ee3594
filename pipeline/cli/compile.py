"""`llmc compile` (not built yet)."""
from __future__ import annotations

from ..errors import NotAvailable

COMMAND = "compile"
HELP = "Not available yet in this version of llmc."


def command() -> None:
    raise NotAvailable("llmc compile is not available yet in this version")
