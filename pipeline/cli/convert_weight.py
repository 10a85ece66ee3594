"""`llmc convert_weight` (not built yet)."""
from __future__ import annotations

from ..errors import NotAvailable

COMMAND = "convert_weight"
HELP = "Not available yet in this version of llmc."


def command() -> None:
    raise NotAvailable("llmc convert_weight is not available yet in this version")
