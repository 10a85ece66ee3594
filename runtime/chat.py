"""An interactive chat on a terminal (what `llmc chat` runs)."""
from __future__ import annotations

import sys

from llmc.runtime.engine import MLCEngine
from llmc.runtime.protocol import BadRequestError

HELP = """Commands:
  /help                 this text
  /exit                 leave (Ctrl-D works too)
  /reset                forget the conversation
  /stats                prefill and decode speed of the last answer
  /set k=v;k=v          temperature, top_p, seed, max_tokens, frequency_penalty, presence_penalty,
                        repetition_penalty, stop (comma-separated strings)"""
SETTINGS = {"temperature": float, "top_p": float, "seed": int, "max_tokens": int, "frequency_penalty": float,
            "presence_penalty": float, "repetition_penalty": float,
            "stop": lambda v: [s for s in v.split(",") if s]}


class ChatSession:
    def __init__(self, engine: MLCEngine, out=sys.stdout):
        self.engine, self.out = engine, out
        self.history: list[dict] = []
        self.settings: dict = {}
        self.last = None

    def handle(self, line: str) -> bool:
        """Act on one line of input; False means the session is over."""
        line = line.strip()
        if not line:
            return True
        if line.startswith("/"):
            return self.command(line)
        self.history.append({"role": "user", "content": line})
        before = dict(self.engine.stats)
        reply = ""
        try:
            for chunk in self.engine.chat.completions.create(messages=self.history, stream=True, **self.settings):
                piece = chunk.choices[0].delta.content or ""
                reply += piece
                self.out.write(piece)
                self.out.flush()
        except BadRequestError as exc:
            self.history.pop()
            self.out.write(f"error: {exc}\n")
            return True
        self.out.write("\n")
        self.history.append({"role": "assistant", "content": reply})
        self.last = {k: self.engine.stats[k] - before[k] for k in before}
        return True

    def command(self, line: str) -> bool:
        name, _, arg = line.partition(" ")
        if name == "/exit":
            return False
        if name == "/help":
            self.out.write(HELP + "\n")
        elif name == "/reset":
            self.history.clear()
            self.out.write("(conversation reset)\n")
        elif name == "/stats":
            self.out.write(self.stats_text() + "\n")
        elif name == "/set":
            self.set(arg)
        else:
            self.out.write(f"unknown command {name}; /help lists them\n")
        return True

    def set(self, arg: str) -> None:
        for item in filter(None, (p.strip() for p in arg.split(";"))):
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in SETTINGS:
                self.out.write(f"error: cannot set {item!r}; settings: {', '.join(SETTINGS)}\n")
                return
            try:
                self.settings[key] = SETTINGS[key](value.strip())
            except ValueError:
                self.out.write(f"error: {key} needs a number, not {value.strip()!r}\n")
                return
        self.out.write(f"(settings: {self.settings})\n")

    def stats_text(self) -> str:
        if not self.last:
            return "no answer yet"
        def rate(phase):
            seconds = self.last[f"{phase}_seconds"]
            return self.last[f"{phase}_tokens"] / seconds if seconds else 0.0
        return f"prefill: {rate('prefill'):.1f} tok/s, decode: {rate('decode'):.1f} tok/s"


def run(engine: MLCEngine, stdin=sys.stdin, out=sys.stdout) -> None:
    session = ChatSession(engine, out)
    interactive = stdin.isatty()
    out.write("Type /help for commands, /exit to leave.\n")
    while True:
        if interactive:
            out.write(">>> ")
            out.flush()
        line = stdin.readline()
        if not line or not session.handle(line):
            break
