"""The `llmc` command line: a thin shell over functions that tests call directly."""
from __future__ import annotations

import sys
import time
import traceback
from typing import Annotated, Optional

import typer

from llmc.cli import common
from llmc.cli import compile as compile_cli
from llmc.errors import BuildFailed, UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="llmc: compile LLMs into MLC-format weights, configs and TVM model libraries.",
)


def _version_text() -> str:
    from llmc.graph import fingerprints

    lines = [f"llmc {fingerprints.TOOLS['llmc']()}"]
    loc = fingerprints.tvm_location()
    if loc is None:
        lines.append("tvm: not installed")
    else:
        lines.append(f"tvm {fingerprints.TOOLS['tvm']().split('+')[0]} at {loc} (commit {fingerprints.tvm_commit()})")
    return "\n".join(lines)


def _show_version(value: bool) -> None:
    if value:
        print(_version_text())
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_show_version, is_eager=True,
                                                    help="Print llmc's and TVM's versions.")] = None,
    store: common.StoreOpt = None,
) -> None:
    """llmc: compile LLMs into MLC-format weights, configs and TVM model libraries."""
    common.session(ctx).store = store


def _register() -> None:
    from llmc.cli import chat, compile, convert_weight, gen_config, release, serve, store_cmd

    for module in (convert_weight, gen_config, compile, chat, serve):
        name = module.COMMAND
        app.command(name=name, help=module.HELP)(module.command)
        if "_" in name:  # the seed guide's underscore names, and typer's dashed habit too
            app.command(name=name.replace("_", "-"), hidden=True, help=module.HELP)(module.command)
    app.add_typer(store_cmd.app, name="store")
    app.add_typer(release.app, name="release")


_register()


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> None:
    started = time.monotonic()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if argv[:1] == [compile_cli.COMMAND]:
        compile_cli.prestart_lower()
    sys.exit(run(argv, debug, started))


def run(argv: list[str], debug: bool = False, started: float | None = None) -> int:
    """Run the CLI; return the exit code. Every failure is one line on stderr."""
    from llmc.store import StoreError

    def fail(message: str, code: int) -> int:
        if debug:
            traceback.print_exc()
        print(f"error: {_one_line(message)}", file=sys.stderr)
        return code

    try:
        session = common.Session() if started is None else common.Session(started)
        code = app(args=argv, prog_name="llmc", standalone_mode=False, obj=session)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        return fail("aborted", 130)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except typer.TyperException as exc:  # usage errors: typer vendors click's exception classes
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(exc.format_message())
            return 0
        return fail(exc.format_message(), 2)
    except (UserError, StoreError) as exc:
        return fail(str(exc), 2)
    except BuildFailed as exc:
        return fail(str(exc), 1)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        return fail(f"{type(exc).__name__}: {exc} (rerun with --debug for the traceback)", 1)
    return code if isinstance(code, int) else 0
