"""The local store: blobs, manifests, action entries, refs and pins under one root.

    <root>/blobs/ab/<hex>_<size>        file contents, read-only, named by digest
    <root>/manifests/ab/<hex>_<size>    canonical msgpack manifests, named by digest
    <root>/actions/ab/<key>             msgpack {manifest, provenance}: the action cache
    <root>/refs/<name>                  a manifest digest: human names, GC roots
    <root>/pins/<id>                    digests held by a running process, GC roots
    <root>/tmp/                         staging; everything is renamed out of here
    <root>/quarantine/                  corrupt objects moved aside by reads and verify

Commit order is blobs -> manifest -> action entry -> ref; an artifact is visible
only once its action entry exists, so a writer killed at any point leaves
nothing partial in sight, only unreferenced objects for GC.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from llmc.store import atomic, canonical, digest, failpoints
from llmc.store.manifest import BadManifest, Entry, Manifest, normalize_mode, walk_files

_KEY_RE = re.compile(r"^[0-9a-f]{32}$")
_REF_SEGMENT = re.compile(r"^[A-Za-z0-9._+=@-]+$")


class StoreError(Exception):
    pass


class CorruptObject(StoreError):
    def __init__(self, kind: str, digest_: str, path: Path, why: str):
        super().__init__(f"corrupt {kind} {digest_} at {path}: {why}")
        self.kind, self.digest, self.path, self.why = kind, digest_, path, why


class MissingObject(StoreError):
    pass


@dataclass(frozen=True)
class ActionEntry:
    key: str
    manifest: str
    provenance: dict


def default_root() -> Path:
    env = os.environ.get("LLMC_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "llmc"


def ref_segment(text: str) -> str:
    """Any file name as one ref segment: bytes outside letters, digits and '._+@-' (and a leading '.')
    become =XX, so "my model.so" is "my=20model.so" and distinct names stay distinct."""
    out = []
    for i, byte in enumerate(text.encode()):
        char = chr(byte)
        plain = byte < 0x80 and (char.isalnum() or char in "_+@-" or (char == "." and i > 0))
        out.append(char if plain else f"={byte:02X}")
    return "".join(out) or "=00"


def action_seal(key: str, manifest_digest: str, provenance: dict) -> str:
    """Binds an action entry to its key: a digest of the key, the manifest it names and its stage."""
    return canonical.key_of([key, manifest_digest, str(provenance.get("stage", ""))])


def entry_is_bound(key: str, entry: dict) -> bool:
    """An entry yields only what its key computed: its seal matches (so its manifest was not swapped)
    and its recorded preimage hashes to the key (so it was not copied from another key)."""
    provenance = entry.get("provenance") or {}
    if entry.get("seal") != action_seal(key, entry.get("manifest", ""), provenance):
        return False
    preimage = provenance.get("preimage")
    return preimage is None or canonical.key_of(preimage) == key


def check_ref_name(name: str) -> str:
    parts = name.split("/")
    if not parts or any(p in ("", ".", "..") or not _REF_SEGMENT.match(p) for p in parts):
        raise StoreError(f"bad ref name {name!r}: use letters, digits, '._+=@-' and '/'")
    return name


class Store:
    def __init__(self, root: str | os.PathLike | None = None, remote=None):
        self.root = Path(root) if root is not None else default_root()
        self.remote = remote  # a store.remote.Remote, or None
        self.blobs = self.root / "blobs"
        self.manifests = self.root / "manifests"
        self.actions = self.root / "actions"
        self.refs = self.root / "refs"
        self.pins = self.root / "pins"
        self.tmp = self.root / "tmp"
        self.quarantine = self.root / "quarantine"
        self.locks = self.root / "locks"
        # Blobs this instance hashed as it stored them: linking one of them out needs no second hash.
        self._hashed_here: set[str] = set()

    def ensure(self) -> "Store":
        try:
            for d in (self.blobs, self.manifests, self.actions, self.refs, self.pins, self.tmp,
                      self.quarantine, self.locks):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store at {self.root}: {exc.strerror}") from exc
        return self

    # ---- blobs ---------------------------------------------------------------------------
    def blob_path(self, d: str) -> Path:
        return self.blobs / digest.object_name(d)

    def manifest_path(self, d: str) -> Path:
        return self.manifests / digest.object_name(d)

    def has_blob(self, d: str) -> bool:
        """Present with the right size (a stat, no hashing)."""
        try:
            return self.blob_path(d).stat().st_size == digest.size_of(d)
        except FileNotFoundError:
            return False

    def _publish(self, tmp: Path, dest: Path) -> None:
        if not atomic.publish(tmp, dest):
            # Reused by a new artifact: refresh its age so a concurrent GC's grace period covers it.
            with contextlib.suppress(OSError):
                os.utime(dest)

    def _already_stored(self, d: str) -> bool:
        """True if the blob is present (its age refreshed, as for a reused object)."""
        if not self.has_blob(d):
            return False
        with contextlib.suppress(OSError):
            os.utime(self.blob_path(d))
        return True

    def put_file(self, path: Path, move: bool = False) -> str:
        """Store a file's bytes as a blob. With move, a file on the store's filesystem is renamed in."""
        d = digest.of_file(path)
        dest = self.blob_path(d)
        if self._already_stored(d):
            return d
        tmp = atomic.temp_path(self.tmp)
        moved = False
        if move:
            try:
                os.rename(path, tmp)
                moved = True
            except OSError:
                pass
        if not moved:
            shutil.copyfile(path, tmp)
            if digest.of_file(tmp) != d:
                tmp.unlink(missing_ok=True)
                raise StoreError(f"{path} changed while it was being stored")
        self._publish(tmp, dest)
        self._hashed_here.add(d)
        return d

    def read_blob(self, d: str) -> bytes:
        return self._read_checked("blob", d, self.blob_path(d))

    def _read_checked(self, kind: str, d: str, path: Path) -> bytes:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise MissingObject(f"{kind} {d} is not in the store") from None
        if digest.of_bytes(data) != d:
            self._quarantine(path)
            raise CorruptObject(kind, d, path, "contents do not match the digest")
        return data

    def _quarantine(self, path: Path) -> Path | None:
        dest = self.quarantine / f"{path.name}.{uuid.uuid4().hex[:8]}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, dest)
            return dest
        except FileNotFoundError:
            return None

    def quarantine_blob(self, d: str) -> Path | None:
        return self._quarantine(self.blob_path(d))

    def iter_blobs(self) -> Iterator[tuple[str, Path]]:
        return _stored_objects(self.blobs)

    def iter_manifests(self) -> Iterator[tuple[str, Path]]:
        return _stored_objects(self.manifests)

    # ---- manifests -----------------------------------------------------------------------
    def put_manifest(self, m: Manifest) -> str:
        data = m.encode()
        d = digest.of_bytes(data)
        dest = self.manifest_path(d)
        if dest.exists() and dest.stat().st_size == len(data):
            with contextlib.suppress(OSError):
                os.utime(dest)
            return d
        tmp = atomic.temp_path(self.tmp)
        tmp.write_bytes(data)
        self._publish(tmp, dest)
        return d

    def get_manifest(self, d: str) -> Manifest:
        data = self._read_checked("manifest", d, self.manifest_path(d))
        try:
            return Manifest.decode(data)
        except BadManifest as exc:
            raise CorruptObject("manifest", d, self.manifest_path(d), str(exc)) from exc

    def has_artifact(self, manifest_digest: str) -> bool:
        """The manifest is readable and every blob it lists is present with its size."""
        try:
            m = self.get_manifest(manifest_digest)
        except StoreError:
            return False
        return all(self.has_blob(e.digest) for e in m)

    # ---- artifacts -----------------------------------------------------------------------
    def commit_dir(self, root: Path, move: bool = False) -> str:
        """Store every file under root as one artifact; return the manifest digest."""
        entries = []
        for rel, full in walk_files(root):
            mode = normalize_mode(full.stat().st_mode)
            d = self.put_file(full, move=move)
            entries.append(Entry(rel, d, digest.size_of(d), mode))
            failpoints.hit("store.after_blob")
        failpoints.hit("store.before_manifest")
        md = self.put_manifest(Manifest.of(entries))
        failpoints.hit("store.after_manifest")
        return md

    def materialize(self, manifest_digest: str, dest: Path, link: bool = False,
                    on_file=None, link_min_bytes: int | None = None) -> Manifest:
        """Write an artifact's files under dest (which must not exist or be empty).

        Copies are hashed as they are written, so a corrupt blob is never handed out:
        it is quarantined and CorruptObject is raised. link=True hard-links blobs
        (read-only) instead, for stage inputs inside the store's own tmp, after hashing
        them: a stage never reads a blob that changed in place (same size, other bytes).
        link_min_bytes links only the blobs of at least that size (a user's folder: its
        weights share the store's read-only files instead of being written twice), and one
        this instance stored (a command installing what it just built) without hashing it
        again. Across file systems, links are copies.
        """
        m = self.get_manifest(manifest_digest)
        dest.mkdir(parents=True, exist_ok=True)
        for e in m:
            src = self.blob_path(e.digest)
            out = dest / e.path
            out.parent.mkdir(parents=True, exist_ok=True)
            shared = link_min_bytes is not None and e.size >= link_min_bytes
            if link or shared:
                if not (shared and e.digest in self._hashed_here):
                    self._check_digest(e.digest, src)
                try:
                    os.link(src, out)
                    if on_file:
                        on_file(e)
                    continue
                except OSError:
                    pass
            self._copy_verified(e.digest, src, out)
            os.chmod(out, e.mode)
            if on_file:
                on_file(e)
        return m

    def _check_size(self, d: str, path: Path) -> None:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise MissingObject(f"blob {d} is not in the store") from None
        if size != digest.size_of(d):
            self._quarantine(path)
            raise CorruptObject("blob", d, path, f"size {size} is not {digest.size_of(d)}")

    def _check_digest(self, d: str, path: Path) -> None:
        self._check_size(d, path)
        if digest.of_file(path) != d:
            self._quarantine(path)
            raise CorruptObject("blob", d, path, "contents do not match the digest")

    def _copy_verified(self, d: str, src: Path, out: Path) -> None:
        self._check_size(d, src)
        h = digest.hasher()
        with open(src, "rb") as fi, open(out, "wb") as fo:
            while chunk := fi.read(digest.CHUNK):
                h.update(chunk)
                fo.write(chunk)
        if digest.make(h.hexdigest(), digest.size_of(d)) != d:
            out.unlink(missing_ok=True)
            self._quarantine(src)
            raise CorruptObject("blob", d, src, "contents do not match the digest")

    # ---- action cache --------------------------------------------------------------------
    def action_path(self, key: str) -> Path:
        if not _KEY_RE.match(key):
            raise StoreError(f"bad action key {key!r}")
        return self.actions / key[:2] / key

    def get_action(self, key: str) -> ActionEntry | None:
        path = self.action_path(key)
        try:
            obj = canonical.unpackb(path.read_bytes())
            if not entry_is_bound(key, obj):
                raise ValueError("entry not bound to its key")
            return ActionEntry(key, obj["manifest"], obj.get("provenance", {}))
        except FileNotFoundError:
            return None
        except Exception:
            # A torn, foreign or edited file is not an entry; drop it so it is rebuilt.
            self._quarantine(path)
            return None

    def put_action(self, key: str, manifest_digest: str, provenance: dict) -> None:
        failpoints.hit("store.before_action")
        data = canonical.packb_loose({"manifest": manifest_digest, "provenance": provenance,
                                      "seal": action_seal(key, manifest_digest, provenance)})
        atomic.write_bytes(self.action_path(key), data, self.tmp)
        failpoints.hit("store.after_action")

    def iter_actions(self) -> Iterator[ActionEntry]:
        if not self.actions.exists():
            return
        for path in sorted(self.actions.glob("*/*")):
            if _KEY_RE.match(path.name):
                entry = self.get_action(path.name)
                if entry:
                    yield entry

    def drop_action(self, key: str) -> None:
        self.action_path(key).unlink(missing_ok=True)

    # ---- refs and pins -------------------------------------------------------------------
    def set_ref(self, name: str, manifest_digest: str) -> None:
        check_ref_name(name)
        digest.parse(manifest_digest)
        atomic.write_bytes(self.refs / name, (manifest_digest + "\n").encode(), self.tmp)
        if self.remote is not None and not self.remote.read_only:
            self.remote.push_ref(self, name)

    def get_ref(self, name: str) -> str | None:
        check_ref_name(name)
        value = self._read_ref(self.refs / name)
        if value == "":
            raise StoreError(f"ref {name} is corrupt (it holds no digest): `llmc store verify` moves it aside")
        return value

    @staticmethod
    def _read_ref(path: Path) -> str | None:
        """A ref's digest; None when there is no such ref; "" when the file holds no digest."""
        try:
            value = path.read_bytes().decode("ascii", errors="replace").strip()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        return value if digest.is_digest(value) else ""

    def list_refs(self) -> dict[str, str]:
        """Every readable ref (a corrupt one is left out: see bad_refs)."""
        return {name: value for name, value in self._all_refs().items() if value}

    def bad_refs(self) -> list[str]:
        """Refs whose file holds no digest (garbage written by something else, a torn copy)."""
        return [name for name, value in self._all_refs().items() if not value]

    def _all_refs(self) -> dict[str, str]:
        out = {}
        if self.refs.exists():
            for path in sorted(self.refs.rglob("*")):
                if path.is_file():
                    out[path.relative_to(self.refs).as_posix()] = self._read_ref(path) or ""
        return out

    def quarantine_ref(self, name: str) -> Path | None:
        return self._quarantine(self.refs / name)

    @contextlib.contextmanager
    def pinned(self, digests) -> Iterator[None]:
        """Hold digests as GC roots while a process uses them."""
        self.pins.mkdir(parents=True, exist_ok=True)
        path = self.pins / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        atomic.write_bytes(path, "\n".join(sorted(digests)).encode(), self.tmp)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

    def pinned_digests(self) -> set[str]:
        out: set[str] = set()
        if self.pins.exists():
            for path in self.pins.iterdir():
                pid = path.name.split("-", 1)[0]
                if pid.isdigit() and not process_alive(int(pid)):
                    path.unlink(missing_ok=True)
                    continue
                with contextlib.suppress(OSError):
                    out.update(line for line in path.read_text().split() if line)
        return out

    @contextlib.contextmanager
    def staging_dir(self, hint: str = "") -> Iterator[Path]:
        """A fresh folder inside the store's tmp (same filesystem, so commits are renames)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        # The pid prefix tells GC that a live process still owns the folder.
        path = self.tmp / f"{os.getpid()}-{hint or 'stage'}-{uuid.uuid4().hex[:12]}"
        path.mkdir()
        try:
            yield path
        finally:
            _rmtree(path)


def _stored_objects(folder: Path) -> Iterator[tuple[str, Path]]:
    if not folder.exists():
        return
    for path in sorted(folder.glob("*/*")):
        hex_value, _, size = path.name.partition("_")
        if size.isdigit() and len(hex_value) == 32:
            yield digest.make(hex_value, int(size)), path


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
