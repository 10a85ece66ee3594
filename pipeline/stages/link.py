"""link: objects -> a model library (.so/.dylib with the C compiler, .tar written deterministically)."""
from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

from ..errors import UserError

NAME = "link"
VERSION = "1"
TOOLS = ("cc",)
DEFAULTS = {"format": "so"}
OUTPUT = "model.{format}"


def objects(folder: Path) -> list[Path]:
    # lib*.o first, then the packed imports (devc.o), as TVM's export_library orders them.
    return sorted(folder.glob("*.o"), key=lambda p: (not p.name.startswith("lib"), p.name))


def run(inputs: dict[str, Path], options: dict, out_dir: Path) -> None:
    fmt = options["format"]
    objs = objects(inputs["objects"])
    out = out_dir / OUTPUT.format(format=fmt)
    if fmt == "tar":
        write_tar(out, objs)
    elif fmt in ("so", "dylib"):
        link_shared(out, objs)
    else:
        raise UserError(f"cannot link a .{fmt} library here")


def link_shared(out: Path, objs: list[Path]) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise UserError("linking a .so needs a C compiler (cc), which is not installed")
    cmd = [cc, "-shared", "-fPIC", "-o", str(out), *[str(o) for o in objs], "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise UserError(f"linking failed: {' '.join(r.stderr.split())[:500]}")


def write_tar(out: Path, files: list[Path]) -> None:
    """A tar whose bytes depend only on the files' names and contents (no times, owners or modes)."""
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(files, key=lambda p: p.name):
            info = tarfile.TarInfo(path.name)
            info.size = path.stat().st_size
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as f:
                tar.addfile(info, f)
