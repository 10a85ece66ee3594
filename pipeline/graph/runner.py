"""The stage runner: keys, action-cache lookups, runs on a miss, commits.

A pipeline is a graph of `Step`s. The runner realizes the last one lazily:
a step whose key is already in the action cache never materializes its
inputs, so a fully cached command reads a few small files and returns.
Stages marked EPHEMERAL (quantize) are not stored; downstream keys then use
the ephemeral step's own key, which is a function of everything it read.

A runner made with hash_sources_while_running (convert_weight, without a team cache) does not wait for
the digest of a big source that its hash cache does not know: a thread hashes it while the steps run
under provisional keys, and their action entries are written under the real keys once it is known
(`settle`). A first conversion then reads a 7B source once, not twice; the price is that a source the
hash cache does not know is converted even where the store already holds its result (same bytes).
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import os
import platform
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from filelock import FileLock

from llmc.errors import UserError
from llmc.graph import fingerprints, progress
from llmc.graph import stage as stage_protocol
from llmc.store import CorruptObject, Store, StoreError, digest
from llmc.store.canonical import key_of as canonical_key
from llmc.store.hashcache import HashCache
from llmc.store.manifest import Entry, Manifest

KEY_SCHEMA = 1
HASH_WHILE_RUNNING_MIN_BYTES = 256 << 20  # smaller sources are hashed first: it takes well under a second
PENDING = "pending:"  # a source's identity until its thread has hashed it


@dataclass(frozen=True)
class Source:
    """Files outside the store that a stage reads (a model folder, a GGUF file)."""
    root: Path
    files: tuple[str, ...]


@dataclass(eq=False)  # compared and hashed by identity: the runner's memo holds each step it realized
class Step:
    stage: ModuleType
    inputs: dict = field(default_factory=dict)   # name -> Step | Source
    options: dict = field(default_factory=dict)
    target: dict | None = None

    def __post_init__(self) -> None:
        stage_protocol.check(self.stage)

    @property
    def name(self) -> str:
        return self.stage.NAME

    @property
    def ephemeral(self) -> bool:
        return self.stage.EPHEMERAL


@dataclass
class Outcome:
    key: str
    preimage: dict
    manifest: str | None = None     # None for ephemeral steps
    status: str = "cached"          # "run", "cached" or "remote"
    path: Path | None = None        # materialized output, once asked for
    input_manifests: tuple[str, ...] = ()
    provisional: bool = False       # keyed with a source's digest still being computed
    seconds: float = 0.0


def normalize_options(stage: ModuleType, options: dict) -> dict:
    """Fill the stage's defaults; refuse options it does not know (a typo must not be a new key)."""
    defaults = stage.DEFAULTS
    unknown = set(options) - set(defaults)
    if unknown:
        raise ValueError(f"stage {stage.NAME} has no option(s) {sorted(unknown)}")
    return {**defaults, **options}


class Runner:
    def __init__(self, store: Store, started: float | None = None, hash_sources_while_running: bool = False):
        """started: when the command began (time.monotonic()), so the summary covers imports too.
        hash_sources_while_running: see the module's docstring (off with a team cache, whose hits need
        the real keys first)."""
        self.store = store.ensure()
        self.remote = store.remote
        self.hashes = HashCache(self.store.root / "hashcache.msgpack", self.store.tmp)
        # Keyed by the step itself (not id(step)): holding the step keeps its id from being reused.
        self._outcomes: dict[Step, Outcome] = {}
        self._sources: dict[Source, str] = {}
        self._hash_while_running = hash_sources_while_running and self.remote is None
        self._hashing: dict[Source, _Hashing] = {}
        self._provisional: list[tuple[Step, Outcome]] = []
        self._scratch = contextlib.ExitStack()
        self.started = started if started is not None else time.monotonic()

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.hashes.save()
        self._scratch.close()

    # ---- keys ----------------------------------------------------------------------------
    def source_digest(self, src: Source) -> str:
        if src not in self._sources:
            stamps = [self._stamp(src, rel) for rel in sorted(set(src.files))]
            known = [self.hashes.known(path, stamp) for path, stamp in stamps]
            big = sum(stamp[0] for _, stamp in stamps) >= HASH_WHILE_RUNNING_MIN_BYTES
            if self._hash_while_running and big and None in known:
                self._hashing[src] = _Hashing(stamps, known)
                self._sources[src] = f"{PENDING}{len(self._hashing)}"
            else:
                self._sources[src] = self._source_manifest(src, stamps, known, known)
        return self._sources[src]

    @staticmethod
    def _stamp(src: Source, rel: str) -> tuple[Path, list]:
        try:
            return HashCache.stamp(src.root / rel)
        except OSError as exc:
            raise UserError(f"cannot read {src.root / rel}: {exc.strerror}") from None

    def _source_manifest(self, src: Source, stamps: list, known: list, digests: list) -> str:
        """The source's manifest digest from its files' digests (hashed here where None); those the hash
        cache did not know are remembered."""
        entries = []
        for rel, (path, stamp), was_known, d in zip(sorted(set(src.files)), stamps, known, digests):
            if d is None:
                d = _hash_file(path)
            if was_known is None:
                self.hashes.remember(path, stamp, d)
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            entries.append(Entry(rel, d, digest.size_of(d), mode))
        return Manifest.of(entries).digest

    def settle(self) -> None:
        """Wait for the sources hashed while the steps ran; key the steps run meanwhile by them and write
        their action entries."""
        if not self._hashing:
            return
        for src, hashing in self._hashing.items():
            self._sources[src] = self._source_manifest(src, hashing.stamps, hashing.known, hashing.result())
        self._hashing.clear()
        for step, outcome in self._provisional:  # in the order they were keyed: inputs first
            outcome.preimage = self.preimage(step)
            outcome.key = canonical_key(outcome.preimage)
            outcome.provisional = False
            if not step.ephemeral:
                self.store.put_action(outcome.key, outcome.manifest,
                                      self._provenance(step, outcome, outcome.seconds))
        self._provisional.clear()

    def identity(self, node) -> str:
        """What a downstream key records for an input."""
        if isinstance(node, Source):
            return self.source_digest(node)
        outcome = self.realize(node)
        return outcome.manifest if outcome.manifest is not None else f"key:{outcome.key}"

    def preimage(self, step: Step) -> dict:
        return {
            "schema": KEY_SCHEMA,
            "stage": step.stage.NAME,
            "version": step.stage.VERSION,
            "inputs": {name: self.identity(node) for name, node in sorted(step.inputs.items())},
            "options": normalize_options(step.stage, step.options),
            "target": step.target,
            "tools": fingerprints.fingerprint(self._tools(step)),
        }

    @staticmethod
    def _tools(step: Step) -> tuple[str, ...]:
        tools = step.stage.TOOLS
        return tools(step.options, step.target) if callable(tools) else tools

    def key(self, step: Step) -> str:
        return canonical_key(self.preimage(step))

    # ---- realization ---------------------------------------------------------------------
    def realize(self, step: Step) -> Outcome:
        """Make sure the step's output exists (stored steps) or is keyed (ephemeral ones)."""
        done = self._outcomes.get(step)
        if done is not None:
            return done
        pre = self.preimage(step)
        key = canonical_key(pre)
        outcome = Outcome(key, pre, input_manifests=self._input_manifests(step))
        self._outcomes[step] = outcome
        if self._hashing and self._depends_on_a_pending_source(pre):
            outcome.provisional = True
            self._provisional.append((step, outcome))
            if not step.ephemeral:
                self._run(step, outcome)  # no lookup: its real key is not known yet
            return outcome
        if step.ephemeral:
            return outcome
        if self._lookup(outcome):
            return outcome
        lock = FileLock(str(self.store.locks / f"{key}.lock"))
        with lock:
            if self._lookup(outcome):  # another process built it while we waited
                return outcome
            self._run(step, outcome)
        return outcome

    def _depends_on_a_pending_source(self, pre: dict) -> bool:
        provisional_keys = {f"key:{o.key}" for _, o in self._provisional}
        return any(i.startswith(PENDING) or i in provisional_keys for i in pre["inputs"].values())

    def _lookup(self, outcome: Outcome) -> bool:
        entry = self.store.get_action(outcome.key)
        if entry is not None and self.store.has_artifact(entry.manifest):
            outcome.manifest, outcome.status = entry.manifest, "cached"
            return True
        if self.remote is not None and self.remote.fetch_action(self.store, outcome.key):
            entry = self.store.get_action(outcome.key)
            if entry is not None and self.store.has_artifact(entry.manifest):
                outcome.manifest, outcome.status = entry.manifest, "remote"
                return True
        return False

    def _input_manifests(self, step: Step) -> tuple[str, ...]:
        """Stored manifests this step reads, looking through ephemeral inputs (GC roots follow these)."""
        found: list[str] = []
        for node in step.inputs.values():
            if isinstance(node, Source):
                continue
            outcome = self.realize(node)
            if outcome.manifest is not None:
                found.append(outcome.manifest)
            else:
                found.extend(outcome.input_manifests)
        return tuple(sorted(set(found)))

    def _run(self, step: Step, outcome: Outcome) -> None:
        inputs = {name: self.path(node) for name, node in step.inputs.items()}
        options = outcome.preimage["options"]
        if step.target is not None:
            options = {**options, "target": step.target}
        t0 = time.monotonic()
        with self._disk_full_is_the_stores(step), self.store.pinned(outcome.input_manifests), \
                progress.task(step.name):
            if step.ephemeral:
                # Lives until the command ends: a downstream stage reads it.
                out = self._scratch.enter_context(self.store.staging_dir(step.name))
                step.stage.run(inputs, options, out)
                outcome.path = out
            else:
                with self.store.staging_dir(step.name) as out:
                    step.stage.run(inputs, options, out)
                    manifest = self.store.commit_dir(out, move=True)
                outcome.manifest, outcome.seconds = manifest, time.monotonic() - t0
                if not outcome.provisional:  # else settle() writes it under the real key
                    self.store.put_action(outcome.key, manifest, self._provenance(step, outcome, outcome.seconds))
                if self.remote is not None and not self.remote.read_only:
                    self.remote.push_action(self.store, outcome.key)
        outcome.status = "run"

    @contextlib.contextmanager
    def _disk_full_is_the_stores(self, step: Step):
        """A stage writes into the store's tmp: a full disk there is the store's, and says so."""
        try:
            yield
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            raise StoreError(f"no space left for the store at {self.store.root} while {step.name} wrote "
                             f"{exc.filename or 'its output'}: free space there, or use --store / LLMC_HOME "
                             "on a larger disk") from exc

    def _provenance(self, step: Step, outcome: Outcome, seconds: float) -> dict:
        return {
            "stage": step.stage.NAME,
            "version": step.stage.VERSION,
            "preimage": outcome.preimage,
            "input_manifests": list(outcome.input_manifests),
            "host": platform.node(),
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(seconds, 3),
        }

    def path(self, node) -> Path:
        """A read-only folder with a node's output, materialized on first use."""
        if isinstance(node, Source):
            return node.root
        outcome = self.realize(node)
        if outcome.path is None:
            if node.ephemeral:
                self._run(node, outcome)
            else:
                outcome.path = self._materialize_input(node, outcome)
        return outcome.path

    def _materialize_input(self, node: Step, outcome: Outcome) -> Path:
        """A stored input, hashed as it is linked; one found corrupt (and quarantined) is built again."""
        dest = self._scratch.enter_context(self.store.staging_dir(f"{node.name}-in"))
        try:
            self.store.materialize(outcome.manifest, dest, link=True)
        except CorruptObject:
            self.store.drop_action(outcome.key)
            self._run(node, outcome)
            dest = self._scratch.enter_context(self.store.staging_dir(f"{node.name}-in"))
            self.store.materialize(outcome.manifest, dest, link=True)
        return dest

    def manifest(self, step: Step) -> str:
        outcome = self.realize(step)
        self.settle()
        if outcome.manifest is None:
            raise StoreError(f"stage {step.name} is ephemeral and has no stored output")
        return outcome.manifest

    # ---- reporting -----------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        counts = {"run": 0, "cached": 0, "remote": 0}
        for outcome in self._outcomes.values():
            counts[outcome.status] += 1
        return counts

    def summary(self) -> str:
        c = self.counts()
        seconds = time.monotonic() - self.started
        cached = c["cached"] + c["remote"]
        remote = f" ({c['remote']} remote)" if self.remote is not None else ""
        return f"stages: {c['run']} run, {cached} cached{remote}, {seconds:.1f} s"


class _Hashing:
    """A source's files hashed on a daemon thread (a command that fails meanwhile does not wait for it)."""

    def __init__(self, stamps: list[tuple[Path, list]], known: list[str | None]):
        self.stamps, self.known = stamps, known
        self._digests = list(known)
        self._error: UserError | None = None
        self._thread = threading.Thread(target=self._hash, name="llmc-source-hash", daemon=True)
        self._thread.start()

    def _hash(self) -> None:
        try:
            for i, (path, _) in enumerate(self.stamps):
                if self._digests[i] is None:
                    self._digests[i] = _hash_file(path)
        except UserError as exc:
            self._error = exc

    def result(self) -> list[str]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._digests


def _hash_file(path: Path) -> str:
    try:
        return digest.of_file(path)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
