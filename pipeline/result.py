"""What a pipeline command returns to its CLI shell and to tests."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Result:
    manifest: str                   # the artifact the output came from
    output: Path
    summary: str                    # "stages: R run, C cached, T s"
    counts: dict
    messages: list[str] = field(default_factory=list)   # warnings and notes, already prefixed

    def report(self) -> None:
        for message in self.messages:
            print(message, file=sys.stderr)
        print(self.summary, file=sys.stderr)
