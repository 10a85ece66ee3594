"""One release job (convert, gen_config or compile), run through a store in whatever process an
executor gives it. Specs and results are JSON, so they cross process and machine boundaries.

A compile reads two files of its model (mlc-chat-config.json and the weights' tensor-cache.json) from
the artifacts its convert and gen_config jobs built, fetching just those objects from the remote tier
when they were built on another machine: a compile node never downloads weight shards.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from llmc.errors import BuildFailed
from llmc.graph.runner import Runner, Step
from llmc.store import MissingObject

COMPILE_READS = {"config": "mlc-chat-config.json", "convert": "tensor-cache.json"}


def step(spec: dict) -> Step:
    """The store step of a convert or gen_config job (built now: a bad option fails before any work)."""
    if spec["kind"] == "convert":
        from llmc.commands.convert_weight import weights_step

        return weights_step(spec["source"], spec["quant"], spec["model_type"], source=spec.get("weights"),
                            mode=spec["mode"])
    from llmc.commands.gen_config import config_step

    return config_step(spec["source"], spec["quant"], spec["conv_template"], spec["model_type"], **spec["sizes"])


def run(spec: dict, needs: dict[str, dict], store) -> dict:
    """Build one job; needs maps a needed job's kind to its result. Returns
    {manifest, key, counts: {run, cached, remote}, seconds}."""
    started = time.monotonic()
    if spec["kind"] == "compile":
        return _compile(spec, needs, store, started)
    with Runner(store, started) as runner:
        job_step = step(spec)
        manifest = runner.manifest(job_step)
        store.set_ref(spec["ref"], manifest)  # a GC root on the node that built it, as the commands' outputs
        return {"manifest": manifest, "key": runner.key(job_step), "counts": runner.counts(),
                "seconds": round(time.monotonic() - started, 3)}


def in_worker(spec: dict, needs: dict, root: str | None, remote: str | None, read_only: bool):
    """run() in an executor's worker, on the store at root (None: this machine's $LLMC_HOME) with the
    remote tier given by URL: (result, None), or (None, the one-line error)."""
    from llmc.store import Store

    try:
        store = Store(root)
        if remote:
            from llmc.store.remote import open_remote

            store.remote = open_remote(remote, read_only)
        return run(spec, needs, store), None
    except Exception as exc:  # noqa: BLE001 - every failure goes back as one line
        return None, one_line(exc)


def _compile(spec: dict, needs: dict[str, dict], store, started: float) -> dict:
    from llmc.commands.compile import compile_model

    store.ensure()
    with tempfile.TemporaryDirectory(prefix="release-", dir=store.tmp) as tmp:
        model = Path(tmp) / "model-MLC"
        model.mkdir()
        for kind, name in COMPILE_READS.items():
            (model / name).write_bytes(member(store, needs[kind]["manifest"], name))
        result = compile_model(str(model), Path(tmp) / spec["file"], store, device=spec["device"],
                               opt=spec["opt"], overrides=spec["overrides"], started=started)
    built = result.built[0]
    return {"manifest": built.manifest, "key": built.key, "counts": result.counts,
            "seconds": round(time.monotonic() - started, 3)}


def one_line(exc: BaseException) -> str:
    """A job's failure as the CLI would print it: our errors by their message, others with their type."""
    from llmc.errors import BuildFailed, UserError
    from llmc.store import StoreError

    text = str(exc) if isinstance(exc, (UserError, BuildFailed, StoreError)) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def member(store, manifest: str, name: str) -> bytes:
    """One file of an artifact, from the local store or, object by object, from its remote tier."""
    try:
        entries = store.get_manifest(manifest)
    except MissingObject:
        if store.remote is None or not store.remote.fetch_object(store, "manifest", manifest):
            raise BuildFailed(f"artifact {manifest} is in neither the local store nor the remote") from None
        entries = store.get_manifest(manifest)
    entry = next((e for e in entries if e.path == name), None)
    if entry is None:
        raise BuildFailed(f"artifact {manifest} has no {name}")
    if not store.has_blob(entry.digest) and store.remote is not None:
        store.remote.fetch_object(store, "blob", entry.digest)
    return store.read_blob(entry.digest)
