"""What a pipeline command returns to its CLI shell and to tests."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Built:
    """One library of a compile: the device it is for, where it was installed, its artifact."""
    device: str
    output: Path
    manifest: str
    key: str = ""                   # the link step's action key


@dataclass
class Result:
    manifest: str | None            # the artifact the output came from (None for a multi-device compile)
    output: Path
    summary: str                    # "stages: R run, C cached, T s"
    counts: dict
    messages: list[str] = field(default_factory=list)   # warnings and notes, already prefixed
    built: list[Built] = field(default_factory=list)    # compile: every device's library

    def report(self) -> None:
        for message in self.messages:
            print(message, file=sys.stderr)
        print(self.summary, file=sys.stderr)
