"""`llmc gen_config` (not built yet)."""
from __future__ import annotations

from ..errors import NotAvailable

COMMAND = "gen_config"
HELP = "Not available yet in this version of llmc."


def command() -> None:
    raise NotAvailable("llmc gen_config is not available yet in this version")
