"""`llmc store ...`: look into, check and clean the artifact store."""
from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer
from llmc.cli.common import ReadOnlyOpt, RemoteOpt, StoreOpt, open_store
from llmc.errors import UserError

app = typer.Typer(help="Inspect, verify and garbage-collect the artifact store.", no_args_is_help=True)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _note_bad_refs(s) -> None:
    for name in s.bad_refs():
        print(f"note: skipping corrupt ref {name} (it holds no digest; `llmc store verify` moves it aside)",
              file=sys.stderr)


@app.command("ls")
def ls(ctx: typer.Context, store: StoreOpt = None) -> None:
    """List refs and what the store holds."""
    s = open_store(ctx, store)
    refs = s.list_refs()
    for name, manifest in refs.items():
        try:
            size = _size(s.get_manifest(manifest).total_size)
        except Exception:  # noqa: BLE001 - a broken ref is shown, not fatal
            size = "missing"
        print(f"{name}\t{manifest}\t{size}")
    _note_bad_refs(s)
    blobs = list(s.iter_blobs())
    total = sum(p.stat().st_size for _, p in blobs)
    actions = sum(1 for _ in s.iter_actions())
    print(f"{len(refs)} refs, {actions} action entries, {sum(1 for _ in s.iter_manifests())} manifests, "
          f"{len(blobs)} blobs ({_size(total)}) in {s.root}")


@app.command("show")
def show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="A ref, a manifest digest or an action key.")],
         store: StoreOpt = None) -> None:
    """Show the files of an artifact, or an action entry's provenance."""
    import json

    from llmc.store import digest
    from llmc.store.local import _KEY_RE

    s = open_store(ctx, store)
    if _KEY_RE.match(name):
        entry = s.get_action(name)
        if entry is None:
            raise UserError(f"no action entry {name}")
        print(json.dumps({"key": entry.key, "manifest": entry.manifest, "provenance": entry.provenance},
                         indent=2, default=str))
        return
    manifest = name if digest.is_digest(name) else s.get_ref(name)
    if manifest is None:
        raise UserError(f"{name!r} is not a ref, a manifest digest or an action key in {s.root}")
    m = s.get_manifest(manifest)
    print(f"manifest {manifest}")
    for e in m:
        print(f"{e.mode:o}\t{e.size}\t{e.digest}\t{e.path}")


@app.command("verify")
def verify(ctx: typer.Context, store: StoreOpt = None) -> None:
    """Rehash every object; name each corrupt one (moved to quarantine/); exit 1 if any."""
    from llmc.store.verify import verify as run_verify

    s = open_store(ctx, store)
    report = run_verify(s)
    for problem in report.problems:
        print(problem)
    for key in report.stale_actions:
        print(f"note: action entry {key} names a manifest that is gone (rebuilt on next use)")
    for key in report.tainted_actions:
        print(f"note: dropped action entry {key}: it was built from a corrupt input (rebuilt on next use)")
    print(f"checked {report.blobs} blobs and {report.manifests} manifests: "
          f"{len(report.problems)} problem(s)")
    if not report.ok:
        raise typer.Exit(1)


@app.command("gc")
def gc(ctx: typer.Context, dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print what would be removed.")] = False,
       grace: Annotated[str, typer.Option("--grace", help="Keep unreachable objects younger than this.")] = "24h",
       store: StoreOpt = None) -> None:
    """Remove what no ref or pin reaches and is older than the grace period."""
    from llmc.store import gc as store_gc

    try:
        grace_s = store_gc.parse_duration(grace)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    s = open_store(ctx, store)
    _note_bad_refs(s)
    plan = store_gc.plan(s, grace_s)
    verb = "would remove" if dry_run else "removed"
    for d, _ in plan.manifests:
        print(f"{verb} manifest {d}")
    for d, _ in plan.blobs:
        print(f"{verb} blob {d}")
    for key in plan.actions:
        print(f"{verb} action {key}")
    for path in plan.scratch:
        print(f"{verb} scratch {path}")
    if not dry_run:
        store_gc.execute(s, plan)
    print(f"{verb} {len(plan.blobs)} blobs, {len(plan.manifests)} manifests, {len(plan.actions)} action "
          f"entries ({_size(plan.bytes_freed)}); kept {len(plan.kept_manifests)} manifests")


@app.command("explain")
def explain(ctx: typer.Context, a: Annotated[str, typer.Argument(help="Action key or ref.")],
            b: Annotated[str, typer.Argument(help="Action key or ref.")],
            store: StoreOpt = None) -> None:
    """Say which input, option or tool makes two action keys differ."""
    from llmc.store.explain import explain as run_explain

    for line in run_explain(open_store(ctx, store), a, b):
        print(line)


def _remote_store(ctx: typer.Context, store, remote, read_only=False):
    s = open_store(ctx, store, remote, read_only)
    if s.remote is None:
        raise UserError("no remote configured: pass --remote URL, set LLMC_REMOTE or $LLMC_HOME/config.toml")
    return s


@app.command("push")
def push(ctx: typer.Context, refs: Annotated[Optional[list[str]], typer.Argument(help="Refs to push (default: everything).")] = None,
         store: StoreOpt = None, remote: RemoteOpt = None) -> None:
    """Upload what was built offline: artifacts, their action entries, and refs."""
    s = _remote_store(ctx, store, remote)
    if s.remote.read_only:
        raise UserError("the remote is read-only here (--remote-read-only or config): nothing pushed")
    names = refs or list(s.list_refs())
    missing = [n for n in names if s.get_ref(n) is None]
    if missing:
        raise UserError(f"no ref {missing[0]!r} in {s.root}")
    entries = [e for e in s.iter_actions() if refs is None or e.manifest in {s.get_ref(n) for n in names}]
    pushed = sum(bool(s.remote.push_action(s, e.key)) for e in entries)
    pushed_refs = sum(bool(s.remote.push_ref(s, n)) for n in names)
    if s.remote.broken:
        raise UserError(f"push to {s.remote.url} failed: {s.remote.broken}")
    print(f"pushed {pushed} action entries and {pushed_refs} refs to {s.remote.url}")


@app.command("pull")
def pull(ctx: typer.Context, ref: Annotated[str, typer.Argument(help="A ref on the remote, or a manifest digest.")],
         store: StoreOpt = None, remote: RemoteOpt = None, remote_read_only: ReadOnlyOpt = False) -> None:
    """Fetch a whole artifact (verified) and keep it under the same ref locally."""
    from llmc.store.remote import RemoteUnavailable

    s = _remote_store(ctx, store, remote, remote_read_only)
    s.ensure()
    try:
        manifest = s.remote.pull(s, ref)
    except RemoteUnavailable as exc:
        raise UserError(str(exc)) from None
    name = ref if not digest_like(ref) else f"pull/{ref.split(':')[1][:16]}"
    s.remote = None  # the ref came from the remote: nothing to push back
    s.set_ref(name, manifest)
    print(f"{name}\t{manifest}\t{_size(s.get_manifest(manifest).total_size)}")


def digest_like(text: str) -> bool:
    from llmc.store import digest

    return digest.is_digest(text)
