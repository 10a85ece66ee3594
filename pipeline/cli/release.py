"""`llmc release build|verify|resources`: release builds of a plan, and checks of a published release."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from llmc.cli.common import ReadOnlyOpt, RemoteOpt, StoreOpt, open_store, session

app = typer.Typer(help="Build a release plan (models x quantizations x devices) and verify published releases.",
                  no_args_is_help=True)


@app.command("build")
def build(
    ctx: typer.Context,
    plan: Annotated[Path, typer.Argument(help="The release plan (TOML).")],
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Overrides [release] output: a folder "
                                                  "or s3://bucket/prefix.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Worker processes (local), or CPUs of a new "
                                      "local Ray instance.")] = 1,
    ray: Annotated[bool, typer.Option("--ray", help="Run each job as a Ray task (pip install 'llmc[ray]').")] = False,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Ray cluster (default $RAY_ADDRESS, "
                                                       "else a new local instance).")] = None,
    store: StoreOpt = None,
    remote: RemoteOpt = None,
    remote_read_only: ReadOnlyOpt = False,
) -> None:
    """Build every job of PLAN once (converts shared by devices) and publish the outputs with release.json."""
    from llmc.commands.release import build_release
    from llmc.graph.progress import terminal

    with terminal():
        result = build_release(str(plan), open_store(ctx, store, remote, remote_read_only), output, jobs, ray,
                               ray_address, session(ctx).started)
    result.report()
    if result.failed:
        raise typer.Exit(1)


@app.command("verify")
def verify(index: Annotated[str, typer.Argument(help="release.json, or the folder or s3:// prefix holding it.")]) -> None:
    """Re-hash every file a published release lists; name each one that is missing or does not match."""
    from llmc.commands.release import verify_release

    checked, problems = verify_release(index)
    for problem in problems:
        print(problem)
    print(f"checked {checked} files: {len(problems)} problem(s)")
    if problems:
        raise typer.Exit(1)


@app.command("resources")
def resources() -> None:
    """The Ray resources this machine offers release jobs (its tools): ray start --resources "$(llmc release resources)"."""
    from llmc.release.ray_executor import resources_json

    print(resources_json())
