"""A remote tier for the store: read-through on a local miss, write-through after a build.

The remote mirrors the local layout (blobs/, manifests/, actions/, refs/). Reading
an action entry fetches its manifest and blobs into the local store's tmp, checks
every digest, and only then publishes them and writes the local entry, so nothing
unverified is ever visible. Writing uploads blobs, then the manifest, then the
entry, so a reader never sees an entry whose objects are missing. Objects are
content-addressed: if one exists it holds the same bytes, and check-then-put is
safe between machines (S3 servers such as rclone's have no conditional writes).

A corrupt or truncated remote object is named in a warning and treated as a
miss; a remote that fails (unreachable, timing out) is switched off for the rest
of the command, and the build goes on locally.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from llmc.store import atomic, canonical, digest
from llmc.store.local import entry_is_bound
from llmc.store.manifest import BadManifest, Manifest
from llmc.store.remote.backends import RemoteUnavailable, open_backend

__all__ = ["Remote", "RemoteUnavailable", "open_remote"]
FAILED = object()


def _null_progress(description: str, total: int | None):
    return contextlib.nullcontext(_NullTask())


class _NullTask:
    def advance(self, amount: float = 1) -> None:
        pass


class Remote:
    def __init__(self, backend, read_only: bool = False):
        self.backend = backend
        self.url = backend.url
        self.read_only = read_only
        self.broken: str | None = None      # why the remote was switched off
        self.corrupt: set[str] = set()      # remote paths found corrupt: re-upload them
        self.progress = _null_progress      # (description, total bytes) -> context with .advance(n)
        self.warn = lambda message: print(f"warning: {message}", file=sys.stderr)

    @staticmethod
    def _mirror(store, local: Path) -> str:
        """Where a file of the local store lives on the remote, which mirrors the local layout."""
        return local.relative_to(store.root).as_posix()

    # ---- guarded access -------------------------------------------------------------------
    def _try(self, what: str, fn, *args):
        """A backend call, or FAILED: a missing object or a failing remote (which is then switched off)."""
        if self.broken:
            return FAILED
        try:
            result = fn(*args)
        except FileNotFoundError:
            return FAILED
        except Exception as exc:  # noqa: BLE001 - botocore, aiohttp, OS errors: all mean "not usable now"
            self.broken = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            self.warn(f"remote {self.url} failed while {what} ({self.broken}); continuing without it")
            return FAILED
        return True if result is None else result

    def _fetch_verified(self, store, path: str, kind: str, d: str) -> Path | None:
        """Download an object into the store's tmp and check its digest; None if missing or bad."""
        tmp = atomic.temp_path(store.tmp)
        if self._try(f"fetching {path}", self.backend.get_file, path, tmp) is FAILED:
            tmp.unlink(missing_ok=True)
            return None
        got = digest.of_file(tmp)
        if got != d:
            tmp.unlink(missing_ok=True)
            self.corrupt.add(path)
            why = "truncated" if digest.size_of(got) < digest.size_of(d) else "contents do not match the digest"
            self.warn(f"remote {kind} {d} ({self.url}/{path}) is corrupt ({why}): rejected, building instead")
            return None
        return tmp

    # ---- read-through ---------------------------------------------------------------------
    def fetch_action(self, store, key: str) -> bool:
        """Copy an action entry and its artifact into the local store; True on a verified hit."""
        if self.broken:
            return False
        entry_path = self._mirror(store, store.action_path(key))
        if self._try("looking up an action", self.backend.size, entry_path) in (FAILED, None):
            return False
        tmp = atomic.temp_path(store.tmp)
        try:
            if self._try("fetching an action", self.backend.get_file, entry_path, tmp) is FAILED:
                return False
            try:
                entry = canonical.unpackb(tmp.read_bytes())
                manifest = entry["manifest"]
                digest.parse(manifest)
                if not entry_is_bound(key, entry):
                    raise ValueError("entry not bound to its key")
            except Exception:  # noqa: BLE001 - a torn, foreign or edited file
                self.corrupt.add(entry_path)
                self.warn(f"remote action {key} ({self.url}/{entry_path}) is unreadable or not bound to its key: "
                          "rejected")
                return False
        finally:
            tmp.unlink(missing_ok=True)
        if not self.fetch_artifact(store, manifest):
            return False
        provenance = dict(entry.get("provenance") or {})
        provenance["fetched_from"] = self.url
        store.put_action(key, manifest, provenance)
        return True

    def fetch_object(self, store, kind: str, d: str) -> bool:
        """One manifest or blob by digest, verified then published: a compile elsewhere reads a weights
        artifact's index (its manifest and one blob), not its shards."""
        local = store.manifest_path(d) if kind == "manifest" else store.blob_path(d)
        if local.exists():
            return True
        tmp = self._fetch_verified(store, self._mirror(store, local), kind, d)
        if tmp is None:
            return False
        try:
            store._publish(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def fetch_artifact(self, store, manifest_digest: str) -> bool:
        """Manifest and blobs into the local store, every digest checked before it is published."""
        if store.has_artifact(manifest_digest):
            return True
        mpath = self._mirror(store, store.manifest_path(manifest_digest))
        mtmp = self._fetch_verified(store, mpath, "manifest", manifest_digest)
        if mtmp is None:
            return False
        try:
            m = Manifest.decode(mtmp.read_bytes())
        except BadManifest as exc:
            self.warn(f"remote manifest {manifest_digest} is unreadable ({exc}): rejected")
            mtmp.unlink(missing_ok=True)
            return False
        missing = [e for e in m if not store.has_blob(e.digest)]
        fetched: list[tuple[Path, str]] = []
        try:
            with self.progress(f"fetch {len(missing)} objects", sum(e.size for e in missing)) as bar:
                for e in missing:
                    path = self._mirror(store, store.blob_path(e.digest))
                    blob = self._fetch_verified(store, path, "blob", e.digest)
                    if blob is None:
                        return False
                    fetched.append((blob, e.digest))
                    bar.advance(e.size)
            for blob, d in fetched:
                store._publish(blob, store.blob_path(d))
            store._publish(mtmp, store.manifest_path(manifest_digest))
            return True
        finally:
            for blob, _ in fetched:
                blob.unlink(missing_ok=True)
            mtmp.unlink(missing_ok=True)

    # ---- write-through --------------------------------------------------------------------
    def _put_if_absent(self, store, local: Path, size: int) -> bool:
        path = self._mirror(store, local)
        if path not in self.corrupt and self._try("checking an object", self.backend.size, path) == size:
            return True
        return self._try(f"uploading {path}", self.backend.put_file, path, local) is not FAILED

    def push_artifact(self, store, manifest_digest: str) -> bool:
        """Blobs first, then the manifest: never a manifest whose blobs are missing."""
        if self.read_only or self.broken:
            return False
        m = store.get_manifest(manifest_digest)
        with self.progress(f"push {len(m)} objects", m.total_size) as bar:
            for e in m:
                if not self._put_if_absent(store, store.blob_path(e.digest), e.size):
                    return False
                bar.advance(e.size)
        return self._put_if_absent(store, store.manifest_path(manifest_digest), digest.size_of(manifest_digest))

    def push_action(self, store, key: str) -> bool:
        """The artifact, then the entry last (the remote's commit point)."""
        entry = store.get_action(key)
        if entry is None or not self.push_artifact(store, entry.manifest):
            return False
        local = store.action_path(key)
        return self._try("uploading an action", self.backend.put_file, self._mirror(store, local), local) is not FAILED

    def push_ref(self, store, name: str) -> bool:
        manifest = store.get_ref(name)
        if manifest is None or not self.push_artifact(store, manifest):
            return False
        local = store.refs / name
        return self._try("uploading a ref", self.backend.put_file, self._mirror(store, local), local) is not FAILED

    def pull(self, store, name: str) -> str:
        """A whole artifact by remote ref name or manifest digest; returns its manifest digest."""
        if digest.is_digest(name):
            manifest = name
        else:
            tmp = atomic.temp_path(store.tmp)
            try:
                if self._try("fetching a ref", self.backend.get_file, self._mirror(store, store.refs / name), tmp) is FAILED:
                    raise RemoteUnavailable(self.broken or f"remote {self.url} has no ref {name!r}")
                manifest = tmp.read_text().strip()
            finally:
                tmp.unlink(missing_ok=True)
        if not self.fetch_artifact(store, manifest):
            raise RemoteUnavailable(self.broken or f"cannot fetch {manifest} from {self.url} (see warnings)")
        return manifest


def open_remote(url: str, read_only: bool = False) -> Remote:
    return Remote(open_backend(url), read_only)
