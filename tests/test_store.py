import os
import subprocess
import sys

import pytest

from llmc.graph.runner import Runner, Step
from llmc.store import CorruptObject, Store, digest
from llmc.store import gc as store_gc
from llmc.store.manifest import Manifest
from llmc.store.verify import verify
from toy_stages import make


def build(store, stage, **options):
    with Runner(store) as runner:
        step = Step(stage, options=options)
        return runner.key(step), runner.manifest(step), runner.counts()


def test_digest_format():
    d = digest.of_bytes(b"abc")
    assert d.startswith("xxh128:") and d.endswith(":3")
    assert digest.parse(d)[1] == 3


def test_second_build_is_cached_and_identical(store):
    stage = make()
    k1, m1, c1 = build(store, stage, text="x")
    k2, m2, c2 = build(store, stage, text="x")
    assert (k1, m1) == (k2, m2)
    assert c1["run"] == 1 and c2 == {"run": 0, "cached": 1, "remote": 0}
    assert stage.calls == 1


def test_steps_made_and_dropped_in_a_loop_get_their_own_outcomes(store):
    """The runner's memo holds each step: a dropped step's id, reused by the next one, is no key."""
    toy = make("toy")
    with Runner(store) as runner:
        manifests = [runner.manifest(Step(toy, options={"text": text})) for text in "abcdefgh"]
    assert len(set(manifests)) == len(manifests)
    assert toy.calls == len(manifests)


def test_manifest_is_the_same_on_another_store(tmp_path):
    _, m1, _ = build(Store(tmp_path / "a"), make(), text="x")
    _, m2, _ = build(Store(tmp_path / "b"), make(), text="x")
    assert m1 == m2


def test_manifest_normalizes_modes_and_sorts(store, tmp_path):
    d = tmp_path / "art"
    (d / "b").mkdir(parents=True)
    (d / "b" / "x").write_bytes(b"1")
    (d / "a").write_bytes(b"2")
    os.chmod(d / "a", 0o700)
    m = store.get_manifest(store.commit_dir(d))
    assert [e.path for e in m] == ["a", "b/x"]
    assert [e.mode for e in m] == [0o755, 0o644]


def test_materialize_round_trip(store, tmp_path):
    _, manifest, _ = build(store, make(), text="round", files=4)
    out = tmp_path / "out"
    m = store.materialize(manifest, out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [e.path for e in m]
    assert (out / "part0" / "f0.bin").read_bytes() == b"round\x00"


def test_flipped_byte_is_named_by_verify_and_refused_on_read(store, tmp_path):
    _, manifest, _ = build(store, make(), text="payload" * 100)
    entry = next(iter(store.get_manifest(manifest)))
    blob = store.blob_path(entry.digest)
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[3] ^= 0x01
    blob.write_bytes(bytes(data))

    report = verify(store)
    assert not report.ok
    assert any(p.digest == entry.digest and str(blob) in str(p) for p in report.problems)
    assert not blob.exists() and list(store.quarantine.iterdir())
    with pytest.raises(Exception):
        store.materialize(manifest, tmp_path / "out")


def test_flipped_byte_refused_on_read_without_verify(store, tmp_path):
    _, manifest, _ = build(store, make(), text="payload" * 100)
    entry = next(iter(store.get_manifest(manifest)))
    blob = store.blob_path(entry.digest)
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[0] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(CorruptObject, match=entry.digest):
        store.materialize(manifest, tmp_path / "out")
    assert not blob.exists()  # moved aside, never served again


def test_corrupt_artifact_is_rebuilt(store):
    stage = make()
    _, manifest, _ = build(store, stage, text="again")
    entry = next(iter(store.get_manifest(manifest)))
    store.quarantine_blob(entry.digest)
    _, manifest2, counts = build(store, stage, text="again")
    assert manifest2 == manifest and counts["run"] == 1 and store.has_artifact(manifest)


def test_verify_cli_exit_code(store):
    _, manifest, _ = build(store, make(), text="cli")
    entry = next(iter(store.get_manifest(manifest)))
    blob = store.blob_path(entry.digest)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"X" * entry.size)
    r = subprocess.run([sys.executable, "-m", "llmc", "store", "verify", "--store", str(store.root)],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert entry.digest in r.stdout and str(blob) in r.stdout


def test_gc_keeps_what_refs_reach_and_removes_the_rest(store):
    kept_key, kept, _ = build(store, make(), text="keep")
    gone_key, gone, _ = build(store, make(), text="drop")
    store.set_ref("convert_weight/kept", kept)
    kept_blobs = {e.digest for e in store.get_manifest(kept)}
    gone_blobs = {e.digest for e in store.get_manifest(gone)} - kept_blobs

    young = store_gc.plan(store, grace_s=3600)
    assert not young.blobs and not young.manifests  # everything is inside the grace period

    dry = store_gc.plan(store, grace_s=0)
    assert {d for d, _ in dry.manifests} == {gone}
    assert {d for d, _ in dry.blobs} == gone_blobs
    assert dry.actions == [gone_key]
    assert store.has_artifact(gone)  # planning removed nothing

    store_gc.execute(store, dry)
    assert store.has_artifact(kept) and not store.manifest_path(gone).exists()
    assert store.get_action(kept_key) is not None and store.get_action(gone_key) is None
    assert verify(store).ok


def test_gc_keeps_the_inputs_of_a_referenced_artifact(store):
    up, down = make("up"), make("down")
    with Runner(store) as runner:
        up_step = Step(up, options={"text": "u"})
        down_step = Step(down, inputs={"x": up_step})
        store.set_ref("compile/lib", runner.manifest(down_step))
        up_manifest = runner.manifest(up_step)
    store_gc.execute(store, store_gc.plan(store, grace_s=0))
    assert store.has_artifact(up_manifest)
    with Runner(store) as runner:  # the chain is still a full cache hit
        runner.manifest(Step(down, inputs={"x": Step(up, options={"text": "u"})}))
        assert runner.counts()["run"] == 0


def test_gc_cli_dry_run(store):
    build(store, make(), text="drop")
    r = subprocess.run([sys.executable, "-m", "llmc", "store", "gc", "--dry-run", "--grace", "0s",
                        "--store", str(store.root)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "would remove manifest" in r.stdout
    assert len(list(store.iter_manifests())) == 1


def test_explain_names_the_option_that_differs(store):
    from llmc.store.explain import explain

    stage = make()
    ka, _, _ = build(store, stage, text="a")
    kb, _, _ = build(store, stage, text="b")
    lines = explain(store, ka, kb)
    assert lines == ["options.text: 'a' -> 'b'"]


def test_explain_follows_refs(store):
    from llmc.store.explain import explain

    stage = make()
    _, ma, _ = build(store, stage, text="a", files=1)
    _, mb, _ = build(store, stage, text="a", files=2)
    store.set_ref("x/a", ma)
    store.set_ref("x/b", mb)
    assert explain(store, "x/a", "x/b") == ["options.files: 1 -> 2"]


def test_ref_names_are_checked(store):
    from llmc.store import StoreError

    with pytest.raises(StoreError):
        store.set_ref("../escape", "xxh128:" + "0" * 32 + ":1")


def test_manifest_rejects_unsorted():
    from llmc.store.manifest import BadManifest, Entry

    e = [Entry("b", digest.of_bytes(b""), 0, 0o644), Entry("a", digest.of_bytes(b""), 0, 0o644)]
    with pytest.raises(BadManifest):
        Manifest(tuple(e))


def test_any_file_name_is_one_ref_segment_and_distinct_names_stay_distinct(store):
    from llmc.store import ref_segment
    from llmc.store.local import check_ref_name

    names = ["my model.so", "my=20model.so", "modèl", ".hidden", "a/b", "", "plain-name_1.2+x@y"]
    segments = [ref_segment(n) for n in names]
    assert segments[:4] == ["my=20model.so", "my=3D20model.so", "mod=C3=A8l", "=2Ehidden"]
    assert segments[-1] == "plain-name_1.2+x@y"
    assert len(set(segments)) == len(names)
    for segment in segments:
        check_ref_name(f"compile/{segment}")


def test_a_garbage_ref_is_named_and_skipped_and_verify_moves_it_aside(tmp_path):
    root = tmp_path / "s"
    store = Store(root).ensure()
    (root / "refs" / "compile").mkdir(parents=True)
    (root / "refs" / "compile" / "bad").write_bytes(b"garbage\n")
    (root / "refs" / "compile" / "binary").write_bytes(b"\x00\xff")

    def llmc(*args):
        r = subprocess.run([sys.executable, "-m", "llmc", *args, "--store", str(root)], capture_output=True, text=True)
        return r.returncode, r.stdout, r.stderr

    for command in (("store", "gc"), ("store", "ls")):
        code, _, err = llmc(*command)
        assert code == 0 and "skipping corrupt ref compile/bad" in err and "compile/binary" in err
    code, _, err = llmc("store", "show", "compile/bad")
    assert code == 2 and err.strip().splitlines() == [
        "error: ref compile/bad is corrupt (it holds no digest): `llmc store verify` moves it aside"]
    code, out, _ = llmc("store", "verify")
    assert code == 1 and "corrupt ref compile/bad" in out and "2 problem(s)" in out
    assert store.bad_refs() == [] and llmc("store", "verify")[0] == 0


def test_an_action_entry_only_yields_what_its_key_computed(tmp_path):
    """An entry edited to name another valid manifest, or copied under another key, is not served: it is
    moved aside and the step runs again (locally, and from a file:// team cache)."""
    from llmc.store import canonical
    from llmc.store.remote import open_remote

    store = Store(tmp_path / "s")
    stage = make()
    key_x, manifest_x, _ = build(store, stage, text="x")
    key_y, manifest_y, _ = build(store, stage, text="y")
    entry = canonical.unpackb(store.action_path(key_x).read_bytes())
    entry["manifest"] = manifest_y
    store.action_path(key_x).write_bytes(canonical.packb_loose(entry))
    assert store.get_action(key_x) is None
    assert build(store, stage, text="x")[1:] == (manifest_x, {"run": 1, "cached": 0, "remote": 0})
    store.action_path(key_y).write_bytes(store.action_path(key_x).read_bytes())  # x's entry under y's key
    assert store.get_action(key_y) is None and build(store, stage, text="y")[1] == manifest_y

    shared = tmp_path / "team"
    pusher = Store(tmp_path / "pusher", remote=open_remote(f"file://{shared}", False))
    key, manifest, _ = build(pusher, stage, text="z")
    _, other, _ = build(pusher, stage, text="w")
    remote_entry = next(shared.rglob(key))
    forged = canonical.unpackb(remote_entry.read_bytes())
    forged["manifest"] = other
    remote_entry.write_bytes(canonical.packb_loose(forged))
    puller = Store(tmp_path / "puller", remote=open_remote(f"file://{shared}", True))
    assert build(puller, stage, text="z")[1:] == (manifest, {"run": 1, "cached": 0, "remote": 0})


def _chain(store, upstream, downstream, **options):
    with Runner(store) as runner:
        first = Step(upstream, options={"text": "a"})
        second = Step(downstream, inputs={"src": first}, options=options)
        return runner.manifest(first), runner.manifest(second), runner.counts()


def _corrupt_in_place(store, manifest):
    """Flip bytes of an artifact's first blob, keeping its size (what a size check cannot see)."""
    entry = next(iter(store.get_manifest(manifest)))
    path = store.blob_path(entry.digest)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))


def test_a_stage_never_reads_a_stored_input_that_changed_in_place(tmp_path):
    store = Store(tmp_path / "s")
    up, down = make("up"), make("down")
    first, second, _ = _chain(store, up, down, text="b")
    _corrupt_in_place(store, first)
    # a new downstream step reads the input: found corrupt, quarantined, built again, then read
    again_first, third, counts = _chain(store, up, down, text="c")
    assert again_first == first and up.calls == 2 and counts["run"] == 2
    fresh = Store(tmp_path / "fresh")
    assert _chain(fresh, make("up"), make("down"), text="c")[1] == third  # what a clean store computes


def test_verify_drops_entries_built_from_a_corrupt_input(tmp_path):
    store = Store(tmp_path / "s")
    up, down = make("up"), make("down")
    first, second, _ = _chain(store, up, down, text="b")
    _corrupt_in_place(store, first)
    report = verify(store)
    assert [p.kind for p in report.problems][:1] == ["corrupt blob"]
    assert len(report.tainted_actions) == 1  # the downstream entry, built from the corrupt artifact
    _, again, counts = _chain(store, up, down, text="b")
    assert again == second and counts == {"run": 2, "cached": 0, "remote": 0}


def test_a_full_disk_under_the_store_says_it_is_the_store(tmp_path):
    import errno

    from llmc.store import StoreError

    class DiskFull:
        NAME, VERSION, TOOLS, EPHEMERAL, DEFAULTS = "filler", "1", ("python",), False, {}

        def run(self, inputs, options, out_dir):
            (out_dir / "part").write_bytes(b"x")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out_dir / "big.bin"))

    store = Store(tmp_path / "s")
    with pytest.raises(StoreError, match=r"no space left for the store at .*/s while filler wrote .*big\.bin"):
        with Runner(store) as runner:
            runner.manifest(Step(DiskFull()))
    assert not any((tmp_path / "s" / "tmp").iterdir())  # the staging folder is gone
