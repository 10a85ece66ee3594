"""Publishing a release and its index, and checking a published one.

The output holds MLC's layout: `<model>-<quant>-MLC/` (weights, mlc-chat-config.json, tokenizer files;
shared by every device) and `libs/<model>-<quant>-<device>.<ext>`, plus `release.json`: canonical JSON
listing every file (path, size, xxh128 as the store writes digests, sha256) and every artifact (the
job, its action key and manifest), the plan's digest and the tool versions. It names no store, machine,
time or absolute path, so two builds of one plan give the same bytes.

A folder output appears whole (built beside it, then swapped in); an s3:// output gets every file
first and release.json last, so a reader who finds the index finds what it lists.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from llmc.errors import UserError
from llmc.release.plan import Plan
from llmc.store import digest

INDEX = "release.json"
SCHEMA = 1
# Artifact files that are reports for llmc's own commands, not for a model folder.
NOT_PUBLISHED = ("quantization-report.json", "warnings.txt")


def files_to_publish(plan: Plan, outcomes: dict, store) -> dict[str, tuple[str, str]]:
    """release path -> (manifest, member) for every output of a fully built plan."""
    from llmc.release.plan import jobs as plan_jobs

    out: dict[str, tuple[str, str]] = {}
    for job in plan_jobs(plan):
        manifest = outcomes[job.id].result["manifest"]
        _have(store, manifest)
        if job.kind == "compile":
            member = next(e.path for e in store.get_manifest(manifest))
            out[f"libs/{job.spec['file']}"] = (manifest, member)
            continue
        for entry in store.get_manifest(manifest):
            if entry.path not in NOT_PUBLISHED:
                out[f"{plan.folder(job.model, job.quant)}/{entry.path}"] = (manifest, entry.path)
    return out


def _have(store, manifest: str) -> None:
    fetched = store.remote is not None and store.remote.fetch_artifact(store, manifest)
    if not store.has_artifact(manifest) and not fetched:
        raise UserError(f"artifact {manifest} was built but is in neither this store nor the remote")


def index(plan: Plan, outcomes: dict, files: dict[str, Path]) -> bytes:
    from llmc.graph import fingerprints
    from llmc.release.plan import jobs as plan_jobs

    artifacts = [{"job": j.id, "kind": j.kind, "model": j.model, "quantization": j.quant, "device": j.device,
                  "key": outcomes[j.id].result["key"], "manifest": outcomes[j.id].result["manifest"]}
                 for j in plan_jobs(plan)]
    listed = [{"path": rel, **file_digests(path)} for rel, path in sorted(files.items())]
    body = {"schema": SCHEMA, "plan": plan.digest, "opt": plan.opt,
            "tools": {name: fingerprints.TOOLS[name]() for name in ("llmc", "tvm", "python")},
            "artifacts": artifacts, "files": listed}
    return (json.dumps(body, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


def file_digests(path: Path) -> dict:
    xxh, sha = digest.hasher(), hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            xxh.update(chunk)
            sha.update(chunk)
            size += len(chunk)
    return {"size": size, "xxh128": digest.make(xxh.hexdigest(), size), "sha256": sha.hexdigest()}


def publish(plan: Plan, outcomes: dict, store, output: str) -> bytes:
    """Write the release to output (a folder or s3://); return release.json's bytes."""
    wanted = files_to_publish(plan, outcomes, store)
    parent = None if output.startswith("s3://") else Path(output).parent
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    # named like outputs' staging folders, so one left by a killed build is removed by the next
    prefix = f".{Path(output).name}.llmc-{os.getpid()}-"
    with tempfile.TemporaryDirectory(prefix=prefix, dir=parent or store.tmp) as tmp:
        tree = Path(tmp) / "tree"
        by_manifest: dict[str, Path] = {}
        files = {}
        for rel, (manifest, member) in wanted.items():
            if manifest not in by_manifest:
                by_manifest[manifest] = Path(tmp) / "artifacts" / manifest.split(":")[1]
                store.materialize(manifest, by_manifest[manifest])  # verified copies
            dest = tree / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            _link(by_manifest[manifest] / member, dest)
            files[rel] = dest
        text = index(plan, outcomes, files)
        (tree / INDEX).write_bytes(text)
        if parent is None:
            _upload(tree, output, files)
        else:
            from llmc.commands.outputs import replace_dir

            replace_dir(tree, Path(output))
    return text


def _link(src: Path, dest: Path) -> None:
    try:
        dest.hardlink_to(src)
    except OSError:
        shutil.copyfile(src, dest)


def _upload(tree: Path, url: str, files: dict[str, Path]) -> None:
    from llmc.store.remote.backends import RemoteUnavailable, open_backend

    try:
        backend = open_backend(url)
        for rel in sorted(files):
            backend.put_file(rel, files[rel])
        backend.put_file(INDEX, tree / INDEX)  # last: the index names only what is already there
    except RemoteUnavailable as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot publish to {url}: {exc}") from None


def verify(location: str) -> tuple[int, list[str]]:
    """Re-hash a published release (a folder, an s3:// prefix, or its release.json): (files checked,
    one line per file that is missing or does not match)."""
    with tempfile.TemporaryDirectory(prefix="llmc-verify-") as scratch:
        base, reader = _reader(location, Path(scratch))
        try:
            listed = json.loads(reader(INDEX).read_bytes())["files"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{base}/{INDEX} is not a release index ({type(exc).__name__}: {exc})") from None
        problems = []
        for item in listed:
            try:
                got = file_digests(reader(item["path"]))
            except OSError:
                problems.append(f"{item['path']}: missing")
                continue
            bad = [k for k in ("size", "xxh128", "sha256") if got[k] != item[k]]
            if bad:
                problems.append(f"{item['path']}: {', '.join(bad)} do not match the index")
        return len(listed), problems


def _reader(location: str, scratch: Path):
    """(where, fn(rel) -> local Path) for a release folder or s3:// prefix."""
    location = location.removesuffix(INDEX).rstrip("/") or "."
    if not location.startswith("s3://"):
        base = Path(location).expanduser()
        if not (base / INDEX).is_file():
            raise UserError(f"{base} holds no {INDEX}")
        return str(base), lambda rel: base / rel
    from llmc.store.remote.backends import RemoteUnavailable, open_backend

    try:
        backend = open_backend(location)
    except RemoteUnavailable as exc:
        raise UserError(str(exc)) from None

    def fetch(rel: str) -> Path:
        dest = scratch / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            backend.get_file(rel, dest)
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - s3fs and botocore errors: the object cannot be read
            raise OSError(str(exc)) from exc
        return dest
    return location, fetch
