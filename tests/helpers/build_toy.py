"""Build a toy artifact through the runner in its own process (for kill and race tests).

usage: build_toy.py STORE_DIR TEXT FILES REPEAT SLEEP_MS [REF]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmc.graph.runner import Runner, Step  # noqa: E402
from llmc.store import Store  # noqa: E402
from toy_stages import toy  # noqa: E402


def main() -> None:
    root, text, files, repeat, sleep_ms = sys.argv[1:6]
    ref = sys.argv[6] if len(sys.argv) > 6 else None
    store = Store(root)
    with Runner(store) as runner:
        step = Step(toy, options={"text": text, "files": int(files), "repeat": int(repeat),
                                  "sleep_ms": int(sleep_ms)})
        manifest = runner.manifest(step)
        if ref:
            store.set_ref(ref, manifest)
        print(runner.key(step), manifest, runner.counts()["run"])


main()
