"""What a device module declares, as a Device value that planning and lowering ask."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Device:
    name: str                       # as the user wrote it, e.g. "cpu", "cuda:sm_80", "metal:x86-64"
    target: dict                    # canonical TVM target (with "host" for GPUs)
    suffixes: tuple[str, ...]       # output kinds this device can produce
    default_suffix: str
    system_lib_prefix: str = ""     # what --system-lib-prefix auto means ("{model_type}_{quantization}_" for apps)
    cuda_archs: tuple[str, ...] = ()
    prefill_limit: int = 0          # a prefill chunk above this draws a warning (WebGPU's buffer limits)
    prefill_limit_reason: str = ""   # what the limit comes from, for that warning

    @property
    def triple(self) -> str:
        host = self.target.get("host", self.target)
        return host.get("mtriple", "")

    @property
    def kind(self) -> str:
        return self.target["kind"]

    @property
    def is_cpu(self) -> bool:
        return self.kind == "llvm"

    @property
    def file_tag(self) -> str:
        """The device in output file names: ':' and '-' become '_' (cuda:sm_80 -> cuda_sm_80)."""
        return self.name.replace(":", "_").replace("-", "_").replace("+", "_")


APP_PREFIX = "{model_type}_{quantization}_"
