"""What every GPU device shares unless it says otherwise: the model's dtype, dlight schedules, no extra
tools and nothing to do after lower (cuda overrides the last two: nvcc and its fatbin)."""
from __future__ import annotations

from pathlib import Path

ACTIVATION_DTYPE = None  # the model's dtype, as MLC
SCHEDULES = "gpu"
# Programs lower runs for this device: their versions key its libraries.
TOOLS: tuple[str, ...] = ()


def post_lower(out_dir: Path, spec: dict) -> None:
    pass
