"""`llmc chat` (not built yet)."""
from __future__ import annotations

from ..errors import NotAvailable

COMMAND = "chat"
HELP = "Not available yet in this version of llmc."


def command() -> None:
    raise NotAvailable("llmc chat is not available yet in this version")
