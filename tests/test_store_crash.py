"""Writers killed mid-commit and writers racing on one key leave a valid store."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from llmc.store import Store
from llmc.store.verify import verify

HELPER = Path(__file__).parent / "helpers" / "build_toy.py"
POINTS = ["store.before_publish", "store.after_blob", "store.before_manifest", "store.after_manifest",
          "store.before_action", "store.after_action"]


def build(root, text="t", files=6, repeat=50_000, sleep_ms=0, env=None, ref=None):
    args = [sys.executable, str(HELPER), str(root), text, str(files), str(repeat), str(sleep_ms)]
    if ref:
        args.append(ref)
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def visible_artifacts(store: Store):
    return [e for e in store.iter_actions()]


@pytest.mark.parametrize("point", POINTS)
def test_killed_writer_leaves_nothing_partial(tmp_path, point):
    root = tmp_path / "store"
    proc = build(root, env={"LLMC_FAILPOINT": point})
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, f"{point} was never reached"

    store = Store(root)
    for entry in visible_artifacts(store):
        # Anything visible is whole: only the last point comes after the commit.
        assert point == "store.after_action"
        assert store.has_artifact(entry.manifest)
    if point != "store.after_action":
        assert visible_artifacts(store) == []
    report = verify(store)
    assert report.ok, report.problems

    # The next writer builds (or reuses) a whole artifact.
    again = build(root)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    key, manifest, _ = out.split()
    assert store.get_action(key).manifest == manifest and store.has_artifact(manifest)
    assert verify(store).ok


def test_two_processes_build_the_same_key(tmp_path):
    root = tmp_path / "store"
    procs = [build(root, sleep_ms=500) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    results = [o[0].split() for o in outs]
    assert results[0][:2] == results[1][:2]
    assert sorted(r[2] for r in results) == ["0", "1"]  # one built, the other found it built
    store = Store(root)
    assert len(visible_artifacts(store)) == 1
    assert store.has_artifact(results[0][1]) and verify(store).ok


def test_two_processes_commit_the_same_files_without_the_lock(tmp_path):
    """Correctness does not rest on the lock: concurrent content-addressed writes converge."""
    root = tmp_path / "store"
    script = (
        "import sys; from pathlib import Path; from llmc.store import Store\n"
        "s = Store(sys.argv[1]).ensure(); d = Path(sys.argv[2])\n"
        "d.mkdir(parents=True)\n"
        "[(d / f'f{i}').write_bytes(bytes([i]) * 200_000) for i in range(20)]\n"
        "m = s.commit_dir(d, move=True); s.put_action('0' * 32, m, {}); print(m)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(root), str(tmp_path / f"w{i}")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    manifests = {o[0].strip() for o in outs}
    assert len(manifests) == 1
    store = Store(root)
    assert store.get_action("0" * 32).manifest in manifests and verify(store).ok
