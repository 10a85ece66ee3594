"""Named crash points for the store's kill tests.

``LLMC_FAILPOINT=<name>`` makes the process SIGKILL itself when it reaches that
point: a test can stop a writer exactly between two steps of a commit, which a
timer-based kill cannot do reliably.
"""
from __future__ import annotations

import os
import signal


def hit(name: str) -> None:
    if os.environ.get("LLMC_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
