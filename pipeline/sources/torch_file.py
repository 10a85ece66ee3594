"""PyTorch pytorch_model*.bin checkpoints (torch is optional: only this reader needs it)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from llmc.errors import NotAvailable, UserError


class TorchReader:
    def __init__(self, root: Path, files: list[str]):
        try:
            import torch
        except ImportError:
            raise NotAvailable("reading pytorch_model*.bin needs PyTorch, which is not installed "
                               "(pip install torch, or convert the checkpoint to safetensors)") from None
        self._torch = torch
        self.tensors: dict = {}
        for rel in files:
            try:
                state = torch.load(root / rel, map_location="cpu", weights_only=True, mmap=True)
            except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
                raise UserError(f"{root / rel} is not a readable PyTorch checkpoint: "
                                f"{str(exc).splitlines()[0]}") from None
            if not isinstance(state, dict):
                raise UserError(f"{root / rel} does not hold a state dict")
            self.tensors.update(state)

    def shapes(self) -> dict[str, tuple[tuple[int, ...], str]]:
        return {n: (tuple(t.shape), str(t.dtype).replace("torch.", "")) for n, t in self.tensors.items()}

    def release(self, name: str) -> None:
        """torch's own mapping holds the pages; nothing to drop here."""

    def get(self, name: str) -> np.ndarray:
        t = self.tensors[name]
        if t.dtype == self._torch.bfloat16:
            t = t.float()
        return t.numpy()
