"""Run a stage's compiler work in a child Python, so a native crash there is an error here.

TVM can die on inputs nobody tried (a segfault inside a schedule rule kills the process; no Python
exception is raised). In a child, the parent sees the signal and reports it in one line; the
runner then removes the staging folder, so nothing half-written reaches the store or an output.

The child is `python -P .../llmc/graph/isolated.py MODULE [PRELOAD...]`: it imports them, then reads one
line from stdin, `["MODULE:FUNCTION", ARGS.json, ERROR.json]`, calls FUNCTION(**ARGS) and, on an
exception, writes its type, message and traceback to ERROR.json. `prestart` starts it before the work is
known, so its imports (TVM's: 1.5 s) run while this process hashes inputs and looks up keys. It runs
as a script file, not `-m`: TVMScript's parser calls inspect.stack() for every kernel, and runpy's
frozen frames send each call through inspect.getmodule's scan of sys.modules (4 s of a 135M compile).
`-P` keeps this folder off sys.path.
Only a cache miss (or a prestart) starts one: a cached step never calls its stage's run().
"""
from __future__ import annotations

import atexit
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

from llmc.errors import BuildFailed, NotAvailable, UserError

# Fault injection for tests: "MODULE:FUNCTION" or "MODULE:FUNCTION:TEXT". The child running that
# function (and, with TEXT, given arguments whose JSON contains it) kills itself with SIGSEGV after
# importing its module, the way a crash inside TVM ends it.
CRASH_ENV = "LLMC_CRASH_CHILD"
_TAIL = 4000


class ChildTraceback(Exception):
    """The child's traceback, chained under the parent's error (shown with --debug)."""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@dataclass
class _Child:
    proc: subprocess.Popen
    folder: tempfile.TemporaryDirectory
    log: object
    environ: dict

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        self.folder.cleanup()


_prestarted: dict[str, _Child] = {}


def prestart(module: str, *preload: str) -> None:
    """Start the child for the next call of a function of `module` now, importing `preload` too (what the
    function imports when it runs). Unused, it is ended when this process exits."""
    if module not in _prestarted:
        if not _prestarted:
            atexit.register(discard)
        _prestarted[module] = _spawn(module, *preload)


def discard() -> None:
    """End the prestarted children no call used."""
    while _prestarted:
        _prestarted.popitem()[1].end()


def _spawn(*modules: str) -> _Child:
    folder = tempfile.TemporaryDirectory(prefix="llmc-child-")
    log = (Path(folder.name) / "child.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-P", __file__, *modules], stdin=subprocess.PIPE, stdout=log,
                            stderr=log)
    return _Child(proc, folder, log, dict(os.environ))


def call(function: str, kwargs: dict, what: str) -> None:
    """Run `module:function(**kwargs)` in a child; `what` names the work in errors
    ("lower for cuda (llama q4f16_1)")."""
    module = function.partition(":")[0]
    child = _prestarted.pop(module, None)
    if child is not None and child.environ != dict(os.environ):  # it would run under the old environment
        child.end()
        child = None
    child = child or _spawn(module)
    try:
        folder = Path(child.folder.name)
        args_file, error_file, log_file = (folder / n for n in ("args.json", "error.json", "child.log"))
        args_file.write_text(json.dumps(kwargs))
        try:
            child.proc.communicate(json.dumps([function, str(args_file), str(error_file)]).encode() + b"\n")
        except BrokenPipeError:  # it died before reading: its exit status says how
            child.proc.wait()
        returncode = child.proc.returncode
        if returncode == 0:
            return
        child.log.flush()
        log_tail = log_file.read_bytes()[-_TAIL:].decode(errors="replace")
        if returncode < 0:
            name = _signal_name(-returncode)
            raise BuildFailed(f"{what} crashed inside TVM ({name}, signal {-returncode}); nothing was "
                              "stored (a compiler bug, not your input: --debug shows the crash log)"
                              ) from ChildTraceback(log_tail)
        if not error_file.is_file():
            raise BuildFailed(f"{what} exited with code {returncode} without an error report; nothing "
                              "was stored") from ChildTraceback(log_tail)
        _reraise(json.loads(error_file.read_text()), what)
    finally:
        child.end()


# Errors that cross back as themselves (exit code 2: the user's input); the most specific first.
_USER_KINDS = {cls.__name__: cls for cls in (NotAvailable, UserError)}


def _reraise(error: dict, what: str) -> None:
    cause = ChildTraceback(error["traceback"])
    if error["kind"] in _USER_KINDS:
        raise _USER_KINDS[error["kind"]](error["message"]) from cause
    raise BuildFailed(f"{what} failed: {error['type']}: {error['message']}") from cause


def _kind(exc: BaseException) -> str:
    return next((name for name, cls in _USER_KINDS.items() if isinstance(exc, cls)), "other")


def _crash_asked(function: str, args: str) -> bool:
    module, _, rest = os.environ.get(CRASH_ENV, "").partition(":")
    name, _, text = rest.partition(":")
    return f"{module}:{name}" == function and text in args


def _child(function: str, args_file: str, error_file: str) -> int:
    module_name, _, name = function.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), name)
        args = Path(args_file).read_text()
        if _crash_asked(function, args):
            os.kill(os.getpid(), signal.SIGSEGV)
        fn(**json.loads(args))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        Path(error_file).write_text(json.dumps({
            "kind": _kind(exc), "type": type(exc).__name__, "message": str(exc),
            "traceback": "".join(traceback.format_exception(exc)),
        }))
        return 1
    return 0


def _serve(modules: list[str]) -> int:
    for module in modules:
        try:
            importlib.import_module(module)
        except BaseException:  # noqa: BLE001 - the call imports it again and reports the error
            pass
    job = sys.stdin.readline()
    return _child(*json.loads(job)) if job else 0


if __name__ == "__main__":
    # tvm_ffi imports torch eagerly when it is installed (1.1 s of every compile); compiler work never
    # uses it, so in this child "import torch" fails fast and tvm_ffi goes on without it.
    sys.modules["torch"] = None
    from llmc import tvm_libs

    tvm_libs.list_function_names_once()
    sys.exit(_serve(sys.argv[1:]))
