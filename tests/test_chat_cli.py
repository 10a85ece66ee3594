"""`llmc chat` driven through a pseudo-terminal."""
import os
import pty
import select
import subprocess
import sys
import time

from compiled import build


def read_until(fd, marker: str, timeout: float = 120.0) -> str:
    seen = ""
    deadline = time.time() + timeout
    while marker not in seen:
        left = deadline - time.time()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {marker!r}; got {seen!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 4096).decode(errors="replace")
            except OSError:
                break
    return seen


def test_chat_answers_resets_and_exits(tiny_llama, session_store, tmp_path_factory):
    folder = build(tiny_llama, "q0f32", tmp_path_factory.mktemp("chat") / "tiny-MLC", session_store)
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "llmc", "chat", str(folder), "--model-lib",
                             str(folder / "lib.so")], stdin=child, stdout=child, stderr=child, close_fds=True)
    os.close(child)
    try:
        read_until(main, ">>> ")
        os.write(main, b"/set temperature=0;max_tokens=6\n")
        read_until(main, ">>> ")
        os.write(main, b"Hello\n")
        answer = read_until(main, ">>> ")
        assert len(answer.replace(">>> ", "").strip()) > 0
        os.write(main, b"/stats\n")
        assert "decode:" in read_until(main, ">>> ")
        os.write(main, b"/reset\n")
        assert "(conversation reset)" in read_until(main, ">>> ")
        os.write(main, b"/exit\n")
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)
