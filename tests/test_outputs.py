"""Installing into a user's output folder: whole or not at all, their other files kept, no leftovers."""
import errno
import os

import pytest

from llmc.commands import outputs
from llmc.errors import UserError
from llmc.graph.runner import Runner, Step
from llmc.store import Store
from llmc.store.local import CorruptObject
from toy_stages import make


@pytest.fixture
def artifact(tmp_path):
    store = Store(tmp_path / "store")
    with Runner(store) as runner:
        manifest = runner.manifest(Step(make("toy"), options={"text": "new", "files": 2}))
    return store, manifest


def user_folder(path):
    (path / "sub").mkdir(parents=True)
    (path / "mine.txt").write_text("user file")
    (path / "sub" / "lib.so").write_text("a library")
    (path / "part0").mkdir()
    (path / "part0" / "f0.bin").write_text("old version")
    (path / "stale-7.bin").write_text("an owned file the new artifact lacks")
    return path


def staging_left(parent):
    return sorted(p.name for p in parent.iterdir() if ".llmc-" in p.name)


def test_an_existing_folder_is_exchanged_whole_with_the_users_files_kept(artifact, tmp_path):
    store, manifest = artifact
    out = user_folder(tmp_path / "out")
    before = os.stat(out).st_ino
    outputs.install_dir(store, manifest, out, owned=("stale-*.bin",))
    assert os.stat(out).st_ino != before  # a new folder took the old one's place in one step
    assert (out / "mine.txt").read_text() == "user file" and (out / "sub" / "lib.so").read_text() == "a library"
    assert (out / "part0" / "f0.bin").read_bytes() == b"new\x00" and (out / "part0" / "f1.bin").exists()
    assert not (out / "stale-7.bin").exists() and staging_left(tmp_path) == []


def test_a_failed_install_leaves_the_old_folder_and_no_staging(artifact, tmp_path, monkeypatch):
    store, manifest = artifact
    out = user_folder(tmp_path / "out")
    real = store.materialize

    def disk_full(manifest, dest, **kw):
        real(manifest, dest, **kw)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dest / "part0" / "f1.bin"))

    monkeypatch.setattr(store, "materialize", disk_full)
    with pytest.raises(UserError, match="No space left on device"):
        outputs.install_dir(store, manifest, out, owned=("stale-*.bin",))
    assert (out / "part0" / "f0.bin").read_text() == "old version" and (out / "stale-7.bin").exists()
    assert staging_left(tmp_path) == []
    with pytest.raises(UserError, match="No space left on device"):
        outputs.install_file(store, manifest, "part0/f0.bin", tmp_path / "lib.so")
    assert staging_left(tmp_path) == [] and not (tmp_path / "lib.so").exists()


def test_staging_of_a_killed_command_is_removed_by_the_next_install(artifact, tmp_path):
    store, manifest = artifact
    dead = tmp_path / ".out.llmc-999999999-0123abcd"
    (dead / "part0").mkdir(parents=True)
    (dead / "part0" / "big.bin").write_bytes(b"x" * 1000)
    live = tmp_path / f".other.llmc-{os.getpid()}-0123abcd"
    live.mkdir()
    outputs.install_dir(store, manifest, tmp_path / "out")
    assert not dead.exists() and live.exists()  # a live process's staging is not touched


def test_weights_are_linked_from_the_store_and_small_files_copied(tmp_path):
    """A file of LINK_MIN_BYTES or more shares the store's read-only blob (not written twice); smaller
    ones (indexes a user may edit) are copies. A fresh Store hashes a blob before it links it out."""
    art = tmp_path / "art"
    art.mkdir()
    (art / "params_shard_0.bin").write_bytes(os.urandom(outputs.LINK_MIN_BYTES))
    (art / "tensor-cache.json").write_text("{}")
    store = Store(tmp_path / "store").ensure()
    manifest = store.commit_dir(art)
    out = tmp_path / "out"
    outputs.install_dir(store, manifest, out)
    blob = {e.path: store.blob_path(e.digest) for e in store.get_manifest(manifest)}
    assert os.path.samefile(out / "params_shard_0.bin", blob["params_shard_0.bin"])
    assert not os.path.samefile(out / "tensor-cache.json", blob["tensor-cache.json"])
    assert (out / "params_shard_0.bin").read_bytes() == (art / "params_shard_0.bin").read_bytes()
    assert os.stat(out / "params_shard_0.bin").st_mode & 0o222 == 0  # read-only, as the blob
    path = blob["params_shard_0.bin"]
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptObject, match="contents do not match"):
        outputs.install_dir(Store(tmp_path / "store"), manifest, tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
