"""Small stages for testing the runner and store without TVM or models."""
import time
from pathlib import Path


class _Stage:
    def __init__(self, name, version="1", defaults=None, ephemeral=False, tools=("python", "llmc")):
        self.NAME, self.VERSION = name, version
        self.DEFAULTS = defaults or {}
        self.EPHEMERAL = ephemeral
        self.TOOLS = tools
        self.calls = 0

    def run(self, inputs, options, out_dir: Path) -> None:
        self.calls += 1
        if options.get("sleep_ms"):
            time.sleep(options["sleep_ms"] / 1000)
        text = str(options.get("text", "")).encode()
        for i in range(options.get("files", 1)):
            sub = out_dir / f"part{i // 2}"
            sub.mkdir(exist_ok=True)
            (sub / f"f{i}.bin").write_bytes(text * options.get("repeat", 1) + bytes([i % 256]))
        for name, folder in sorted(inputs.items()):
            for f in sorted(Path(folder).rglob("*")):
                if f.is_file():
                    (out_dir / f"from-{name}-{f.name}").write_bytes(f.read_bytes()[::-1])


def make(name="toy", **kw):
    return _Stage(name, defaults=kw.pop("defaults", {"text": "hello", "files": 3, "repeat": 1,
                                                    "sleep_ms": 0}), **kw)


# Module-level stages, importable by name from subprocess helpers.
toy = make("toy")
