"""The stage runner: keys, action-cache lookups, runs on a miss, commits.

A pipeline is a graph of `Step`s. The runner realizes the last one lazily:
a step whose key is already in the action cache never materializes its
inputs, so a fully cached command reads a few small files and returns.
Stages marked EPHEMERAL (quantize) are not stored; downstream keys then use
the ephemeral step's own key, which is a function of everything it read.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import os
import platform
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


def normalize_options(stage: ModuleType, options: dict) -> dict:
    """Fill the stage's defaults; refuse options it does not know (a typo must not be a new key)."""
    defaults = stage.DEFAULTS
    unknown = set(options) - set(defaults)
    if unknown:
        raise ValueError(f"stage {stage.NAME} has no option(s) {sorted(unknown)}")
    return {**defaults, **options}


class Runner:
    def __init__(self, store: Store, started: float | None = None):
        """started: when the command began (time.monotonic()), so the summary covers imports too."""
        self.store = store.ensure()
        self.remote = store.remote
        self.hashes = HashCache(self.store.root / "hashcache.msgpack", self.store.tmp)
        # Keyed by the step itself (not id(step)): holding the step keeps its id from being reused.
        self._outcomes: dict[Step, Outcome] = {}
        self._sources: dict[Source, str] = {}
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
            entries = []
            for rel in sorted(set(src.files)):
                path = src.root / rel
                try:
                    d = self.hashes.digest(path)
                    mode = 0o755 if os.access(path, os.X_OK) else 0o644
                except OSError as exc:
                    raise UserError(f"cannot read {path}: {exc.strerror}") from None
                entries.append(Entry(rel, d, digest.size_of(d), mode))
            self._sources[src] = Manifest.of(entries).digest
        return self._sources[src]

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
                self.store.put_action(outcome.key, manifest,
                                      self._provenance(step, outcome, time.monotonic() - t0))
                outcome.manifest = manifest
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
