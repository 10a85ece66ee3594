"""MLCEngine: chat.completions and completions over a compiled model library, OpenAI-style.

    engine = MLCEngine("dist/SmolLM2-135M-Instruct-q4f16_1-MLC", model_lib="dist/.../lib.so")
    reply = engine.chat.completions.create(messages=[{"role": "user", "content": "Hi"}])
    print(reply.choices[0].message.content)

With model_lib=None the library is compiled just in time through llmc's store.
"""
from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from llmc import devices
from llmc.runtime import protocol as p
from llmc.runtime.grammar import Grammars
from llmc.runtime.library import PAGE_SIZE, ModelLibrary
from llmc.runtime.scheduler import Scheduler
from llmc.runtime.sampling import SamplingParams, apply_penalties, choose, log_softmax
from llmc.runtime.text import Detokenizer, Tokenizer

MAX_TOP_LOGPROBS = 20


@dataclass
class Request:
    prompt: list[int]
    n: int
    params: SamplingParams
    max_tokens: int
    stop_strings: list[str]
    stop_ids: set[int]
    seed: int | None
    logprobs: int | None          # top-k alternatives to report, None for no logprobs
    # echo with logprobs: each prompt token's (logprob, top-k) given the tokens before it, filled by prefill
    prompt_scores: list | None = None
    grammar: object | None = None  # response_format's compiled grammar (grammar.py)


@dataclass
class Event:
    """One generated token of one choice, or the end of a choice."""
    index: int
    text: str = ""
    token: int | None = None
    logprob: float | None = None
    top: list[tuple[int, float]] = field(default_factory=list)
    finish_reason: str | None = None


class _Choice:
    def __init__(self, index: int, seq_id: int, tokenizer: Tokenizer, rng: np.random.Generator):
        self.index, self.seq_id, self.rng = index, seq_id, rng
        self.detok = Detokenizer(tokenizer)
        self.generated: list[int] = []
        self.text = ""      # decoded text so far (stop strings not yet cut)
        self.sent = 0       # how much of text has been handed out
        self.logits: np.ndarray | None = None
        self.finish_reason: str | None = None
        self.cut = False    # a stop string ended the text
        self.matcher = None  # grammar.Matcher under a response_format


def _held_back(text: str, stops: list[str]) -> int:
    """Length of the longest suffix of text that could still grow into a stop string."""
    hold = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:k]):
                hold = max(hold, k)
                break
    return hold


KV_MEMORY_SHARE = 0.25  # of physical memory, at most, for the default KV cache


def kv_cache_tokens(metadata: dict, context_window: int | None, sequences: int) -> int:
    """Tokens the KV cache holds by default: a full context window for each sequence, capped by a
    quarter of this machine's memory (float32 keys and values of every layer), and never below one
    context window of 4096 tokens or the window itself when that is smaller."""
    kv = metadata.get("kv_cache") or {}
    per_token = 2 * 4 * kv.get("num_hidden_layers", 1) * kv.get("num_key_value_heads", 1) * kv.get("head_dim", 1)
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 8 << 30
    cap = int(memory * KV_MEMORY_SHARE) // per_token
    want = sequences * (context_window or 4096)
    floor = min(context_window or 4096, 4096)
    return max(min(want, cap), floor) // PAGE_SIZE * PAGE_SIZE


def _jinja(model_dir: Path, conv: dict) -> dict | None:
    """The model's own chat template, when gen_config found no conversation template like it."""
    from llmc.chat.templates import JINJA, JINJA_FILE, special_tokens

    if conv.get("name") != JINJA:
        return None
    tok = model_dir / "tokenizer_config.json"
    config = json.loads(tok.read_text()) if tok.is_file() else {}
    return {"template": (model_dir / JINJA_FILE).read_text(), **special_tokens(config)}


class MLCEngine:
    def __init__(self, model: str | Path, model_lib: str | Path | None = None, device: str = "cpu",
                 max_num_sequence: int = 4, max_total_sequence_length: int | None = None, store=None):
        self.model_dir = Path(model)
        config_path = self.model_dir / "mlc-chat-config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path} does not exist (run llmc gen_config)")
        self.config = json.loads(config_path.read_text())
        devices.require_runnable(device)
        if model_lib is None:
            model_lib = self._jit(store)
        self.model = str(self.model_dir.name)
        self.lib = ModelLibrary(model_lib, self.model_dir)
        self.tokenizer = Tokenizer(self.model_dir)
        # ids the tokenizer can produce: rows past them pad the vocabulary and are never sampled
        self.active_vocab = int(self.config.get("active_vocab_size") or self.lib.metadata.get("active_vocab_size")
                                or 1 << 31)
        self.conv = self.config["conv_template"]
        self.jinja = _jinja(self.model_dir, self.conv)
        eos = self.config.get("eos_token_id")
        eos = eos if isinstance(eos, list) else [eos] if eos is not None else []
        self.stop_ids = sorted(set(self.conv.get("stop_token_ids") or []) | set(eos))  # the template's and EOS
        self.grammars = Grammars(self.model_dir, int(self.config.get("vocab_size") or self.tokenizer.vocab_size),
                                 self.stop_ids)
        window = int(self.config.get("context_window_size", -1))
        self.context_window = window if window > 0 else None
        total = max_total_sequence_length or kv_cache_tokens(self.lib.metadata, self.context_window,
                                                             max_num_sequence)
        self.max_total = total
        # the most one sequence can hold: the context window, or less when the cache is smaller
        self.max_sequence_tokens = min(self.context_window or total, total)
        self._kv = self.lib.create_kv_cache(max_num_sequence, total)
        self.max_sequences = max_num_sequence
        self._free = list(range(max_num_sequence))
        self.stats = {"prefill_tokens": 0, "prefill_seconds": 0.0, "decode_tokens": 0, "decode_seconds": 0.0}
        self.chat = _Chat(self)
        self.completions = _Completions(self)
        self.scheduler = Scheduler(self)

    def _jit(self, store) -> Path:
        from llmc.commands.compile import jit_library
        from llmc.store import Store

        return jit_library(str(self.model_dir), store if store is not None else Store())

    # ---- defaults and validation -----------------------------------------------------------
    def sampling(self, temperature, top_p, presence_penalty, frequency_penalty, repetition_penalty) -> SamplingParams:
        def pick(value, name, default):
            value = self.config.get(name, default) if value is None else value
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise p.BadRequestError(name, f"must be a number, not {value!r}")
            return float(value)

        params = SamplingParams(pick(temperature, "temperature", 1.0), pick(top_p, "top_p", 1.0),
                                pick(presence_penalty, "presence_penalty", 0.0),
                                pick(frequency_penalty, "frequency_penalty", 0.0),
                                pick(repetition_penalty, "repetition_penalty", 1.0))
        if not 0 <= params.temperature <= 2:
            raise p.BadRequestError("temperature", f"must be in [0, 2], not {params.temperature}")
        if not 0 < params.top_p <= 1:
            raise p.BadRequestError("top_p", f"must be in (0, 1], not {params.top_p}")
        for name in ("presence_penalty", "frequency_penalty"):
            if not -2 <= getattr(params, name) <= 2:
                raise p.BadRequestError(name, f"must be in [-2, 2], not {getattr(params, name)}")
        if params.repetition_penalty <= 0:
            raise p.BadRequestError("repetition_penalty", f"must be positive, not {params.repetition_penalty}")
        return params

    def request(self, prompt: list[int], *, n, max_tokens, stop, seed, logprobs, params,
                prompt_param: str, score_prompt: bool = False) -> Request:
        if not isinstance(n, int) or not 1 <= n <= self.max_sequences:
            raise p.BadRequestError("n", f"must be an integer in [1, {self.max_sequences}], not {n!r}")
        if not prompt:
            raise p.BadRequestError(prompt_param, "is empty")
        # Each choice holds the prompt (shared pages after a fork, but counted whole: a page may be
        # copied) and its own tokens; every sequence can waste up to a page. Checked before prefill.
        fits = (self.max_total - n * (len(prompt) + PAGE_SIZE)) // n
        room = min(self.max_sequence_tokens - len(prompt), fits)
        if room <= 0:
            where = "the context window" if self.max_sequence_tokens - len(prompt) <= 0 else \
                f"the KV cache ({self.max_total} tokens for n={n})"
            raise p.BadRequestError(prompt_param, f"{len(prompt)} tokens do not fit {where} "
                                                  f"({self.max_sequence_tokens} tokens a sequence)")
        if max_tokens is None:
            max_tokens = room
        least = 0 if score_prompt else 1  # echo may ask for the prompt's logprobs and nothing more
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < least:
            raise p.BadRequestError("max_tokens", f"must be an integer of at least {least}, not {max_tokens!r}")
        if isinstance(stop, str):
            stop = [stop]
        if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop)):
            raise p.BadRequestError("stop", "must be a string or a list of non-empty strings")
        if seed is not None and not isinstance(seed, int):
            raise p.BadRequestError("seed", f"must be an integer, not {seed!r}")
        stops = [s for s in (stop or []) + list(self.conv.get("stop_str") or []) if s]
        stop_ids = set(self.stop_ids)
        return Request(list(prompt), n, params, min(max_tokens, room), stops, stop_ids, seed, logprobs,
                       [] if score_prompt else None)

    # ---- generation ----------------------------------------------------------------------
    def generate(self, req: Request) -> Iterator[Event]:
        """Events for every choice of a request, as the scheduler produces them (it batches this request
        with every other one); stopping early cancels the request and frees its KV pages."""
        need = req.n * (len(req.prompt) + req.max_tokens + PAGE_SIZE)
        return self.scheduler.events(self.scheduler.submit(req, need))

    def new_choices(self, req: Request, seq_ids: list[int]) -> list[_Choice]:
        choices = [_Choice(i, s, self.tokenizer, np.random.default_rng(None if req.seed is None else [req.seed, i]))
                   for i, s in enumerate(seq_ids)]
        for c in choices:
            c.matcher = self.grammars.matcher(req.grammar) if req.grammar is not None else None
        return choices

    def constrained(self, req: Request, response_format) -> Request:
        req.grammar = self.grammars.compile(response_format)
        return req

    def _score(self, req: Request, start: int, rows: np.ndarray) -> None:
        """Prompt tokens' logprobs from the logits after each position (the first token has none)."""
        if start == 0:
            req.prompt_scores.append((None, []))
        for i, row in enumerate(rows):
            position = start + i + 1
            if position >= len(req.prompt):
                break
            row = row[: self.active_vocab]
            lp = log_softmax(row)
            top = _top(lp, req.logprobs or 0)
            req.prompt_scores.append((float(lp[req.prompt[position]]), top))

    def _record(self, phase: str, tokens: int, seconds: float) -> None:
        self.stats[f"{phase}_tokens"] += tokens
        self.stats[f"{phase}_seconds"] += seconds

    def _step(self, c: _Choice, req: Request) -> Iterator[Event]:
        raw = c.logits
        if self.active_vocab < len(raw):  # a library that does not mask padded rows itself
            raw = raw.copy()
            raw[self.active_vocab:] = -np.inf
        if c.matcher is not None:
            raw = c.matcher.mask(raw)
        token = choose(apply_penalties(raw, req.params, req.prompt, c.generated), req.params, c.rng)
        if c.matcher is not None:
            c.matcher.accept(token)
        c.generated.append(token)
        logprob, top = None, []
        if req.logprobs is not None:
            lp = log_softmax(raw)
            logprob = float(lp[token])
            top = _top(lp, req.logprobs)
        if token in req.stop_ids:
            c.finish_reason = "stop"
            text = _release(c, c.detok.flush(), req.stop_strings, final=True)
        else:
            text = _release(c, c.detok.add(token), req.stop_strings)
            if c.finish_reason is None and len(c.generated) >= req.max_tokens:
                c.finish_reason = "length"
                text += _release(c, c.detok.flush(), req.stop_strings, final=True)
        yield Event(c.index, text, token, logprob, top)
        if c.finish_reason is not None:
            yield Event(c.index, finish_reason=c.finish_reason)

    def token_bytes(self, token: int) -> list[int]:
        return list(self.tokenizer.token_text(token).encode("utf-8"))


def _top(lp: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The k likeliest ids with their logprobs, ties by id; no sort of the vocabulary when k is 0."""
    if k <= 0:
        return []
    return [(int(t), float(lp[t])) for t in np.argsort(-lp, kind="stable")[:k]]


def _release(c: _Choice, piece: str, stops: list[str], final: bool = False) -> str:
    """Text that can be handed out now: cut at a stop string, hold back what may become one."""
    if c.cut:
        return ""
    c.text += piece
    for stop in stops:
        at = c.text.find(stop, c.sent)
        if at != -1:
            c.text, c.cut, c.finish_reason = c.text[:at], True, "stop"
    hold = 0 if (final or c.cut) else _held_back(c.text, stops)
    out = c.text[c.sent: len(c.text) - hold]
    c.sent += len(out)
    return out


def _messages_to_conversation(messages) -> list[tuple[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise p.BadRequestError("messages", "must be a non-empty list")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m:
            raise p.BadRequestError("messages", f"item {i} is not a {{role, content}} object")
        role, content = m["role"], m.get("content")
        if isinstance(content, list):  # OpenAI content parts: text only here
            if not all(isinstance(part, dict) and part.get("type") == "text" for part in content):
                raise p.BadRequestError("messages", f"item {i}: only text content parts are supported")
            content = "".join(part["text"] for part in content)
        if not isinstance(content, str):
            raise p.BadRequestError("messages", f"item {i}: content must be a string")
        if role == "system" and i != 0:
            raise p.BadRequestError("messages", "a system message is allowed only first")
        if role not in ("system", "user", "assistant"):
            raise p.BadRequestError("messages", f"item {i}: unsupported role {role!r}")
        out.append((role, content))
    return out


class _Chat:
    def __init__(self, engine: MLCEngine):
        self.completions = _ChatCompletions(engine)


class _ChatCompletions:
    def __init__(self, engine: MLCEngine):
        self.engine = engine

    def create(self, messages, stream: bool = False, max_tokens: int | None = None, temperature=None, top_p=None,
               seed: int | None = None, stop=None, n: int = 1, logprobs: bool = False,
               top_logprobs: int | None = None, frequency_penalty=None, presence_penalty=None,
               repetition_penalty=None, model: str | None = None, stream_options: dict | None = None,
               response_format=None, **unsupported):
        if unsupported:
            raise p.BadRequestError(sorted(unsupported)[0], "is not supported")
        e = self.engine
        usage_chunk = _include_usage(stream, stream_options)
        from llmc.chat.templates import prompt_ids

        conversation = _messages_to_conversation(messages)
        if top_logprobs is not None and (not logprobs or not 0 <= top_logprobs <= MAX_TOP_LOGPROBS):
            raise p.BadRequestError("top_logprobs", f"needs logprobs=True and a value in [0, {MAX_TOP_LOGPROBS}]")
        prompt = prompt_ids(e.conv, conversation, e.tokenizer.encode, e.jinja)
        params = e.sampling(temperature, top_p, presence_penalty, frequency_penalty, repetition_penalty)
        req = e.constrained(e.request(prompt, n=n, max_tokens=max_tokens, stop=stop, seed=seed,
                                      logprobs=(top_logprobs or 0) if logprobs else None, params=params,
                                      prompt_param="messages"), response_format)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if stream:
            return self._stream(req, rid, created, usage_chunk)
        texts, reasons = [""] * n, [None] * n
        lps: list[list[p.TokenLogprob]] = [[] for _ in range(n)]
        completion_tokens = 0
        for ev in e.generate(req):
            if ev.finish_reason:
                reasons[ev.index] = ev.finish_reason
                continue
            texts[ev.index] += ev.text
            completion_tokens += 1
            if logprobs:
                lps[ev.index].append(self._logprob(ev))
        choices = [p.Choice(i, p.ChatCompletionMessage(texts[i]), reasons[i],
                            p.ChoiceLogprobs(lps[i]) if logprobs else None) for i in range(n)]
        usage = p.CompletionUsage(len(prompt), completion_tokens, len(prompt) + completion_tokens)
        return p.ChatCompletion(rid, choices, created, e.model, usage)

    def _logprob(self, ev: Event) -> p.TokenLogprob:
        e = self.engine
        top = [p.TopLogprob(e.tokenizer.token_text(t), lp, e.token_bytes(t)) for t, lp in ev.top]
        return p.TokenLogprob(e.tokenizer.token_text(ev.token), ev.logprob, e.token_bytes(ev.token), top)

    def _stream(self, req: Request, rid: str, created: int, usage_chunk: bool = False
                ) -> Iterator[p.ChatCompletionChunk]:
        e = self.engine
        first = [True] * req.n
        generated = 0
        for ev in e.generate(req):
            delta = p.ChoiceDelta(content=ev.text if not ev.finish_reason else None,
                                  role="assistant" if first[ev.index] else None)
            first[ev.index] = False
            generated += ev.token is not None
            lp = p.ChoiceLogprobs([self._logprob(ev)]) if (req.logprobs is not None and ev.token is not None) else None
            yield p.ChatCompletionChunk(rid, [p.ChunkChoice(ev.index, delta, ev.finish_reason, lp)], created, e.model)
        if usage_chunk:  # stream_options.include_usage: a last chunk with no choices and the usage
            yield p.ChatCompletionChunk(rid, [], created, e.model, _usage(req, generated))


class _Completions:
    def __init__(self, engine: MLCEngine):
        self.engine = engine

    def create(self, prompt, stream: bool = False, max_tokens: int | None = 16, temperature=None, top_p=None,
               seed: int | None = None, stop=None, n: int = 1, logprobs: int | None = None,
               frequency_penalty=None, presence_penalty=None, repetition_penalty=None, model: str | None = None,
               echo: bool = False, stream_options: dict | None = None, response_format=None, **unsupported):
        if unsupported:
            raise p.BadRequestError(sorted(unsupported)[0], "is not supported")
        usage_chunk = _include_usage(stream, stream_options)
        if not isinstance(echo, bool):
            raise p.BadRequestError("echo", f"must be true or false, not {echo!r}")
        e = self.engine
        if isinstance(prompt, str):
            ids = e.tokenizer.encode(prompt)
        elif isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
            vocab = int(e.config.get("vocab_size", 0)) or e.tokenizer.vocab_size
            if any(not 0 <= t < vocab for t in prompt):
                raise p.BadRequestError("prompt", f"token ids must be in [0, {vocab})")
            ids = list(prompt)
        else:
            raise p.BadRequestError("prompt", "must be a string or a list of token ids")
        if logprobs is not None and (not isinstance(logprobs, int) or not 0 <= logprobs <= 5):
            raise p.BadRequestError("logprobs", "must be an integer in [0, 5]")
        params = e.sampling(temperature, top_p, presence_penalty, frequency_penalty, repetition_penalty)
        scoring = echo and logprobs is not None and not stream
        req = e.constrained(e.request(ids, n=n, max_tokens=max_tokens, stop=stop, seed=seed, logprobs=logprobs,
                                      params=params, prompt_param="prompt", score_prompt=scoring), response_format)
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        prompt_text = e.tokenizer.decode(ids) if echo else ""
        if stream:
            return self._stream(req, rid, created, prompt_text, usage_chunk)
        texts, reasons = [prompt_text] * n, [None] * n
        lps = [p.Logprobs() for _ in range(n)]
        completion_tokens = 0
        events = e.generate(req)
        first = next(events, None)  # the prompt is scored by then (prefill runs before the first event)
        if scoring:
            for lp in lps:
                self._add_prompt_logprobs(lp, ids, req.prompt_scores)
        for ev in itertools.chain([first] if first is not None else [], events):
            if ev.finish_reason:
                reasons[ev.index] = ev.finish_reason
                continue
            if logprobs is not None:
                self._add_logprob(lps[ev.index], ev, len(texts[ev.index]))
            texts[ev.index] += ev.text
            completion_tokens += 1
        choices = [p.CompletionChoice(i, texts[i], reasons[i], lps[i] if logprobs is not None else None)
                   for i in range(n)]
        usage = p.CompletionUsage(len(ids), completion_tokens, len(ids) + completion_tokens)
        return p.Completion(rid, choices, created, e.model, usage)

    def _add_logprob(self, lp: p.Logprobs, ev: Event, offset: int) -> None:
        tok = self.engine.tokenizer.token_text
        lp.tokens.append(tok(ev.token))
        lp.token_logprobs.append(ev.logprob)
        lp.top_logprobs.append({tok(t): v for t, v in ev.top})
        lp.text_offset.append(offset)

    def _add_prompt_logprobs(self, lp: p.Logprobs, ids: list[int], scores: list) -> None:
        """echo: the prompt's tokens lead the logprobs, as OpenAI's legacy API and vLLM give them."""
        tok = self.engine.tokenizer.token_text
        offset = 0
        for token, (logprob, top) in zip(ids, scores):
            lp.tokens.append(tok(token))
            lp.token_logprobs.append(logprob)
            lp.top_logprobs.append({tok(t): v for t, v in top} if logprob is not None else None)
            lp.text_offset.append(offset)
            offset += len(tok(token))

    def _stream(self, req: Request, rid: str, created: int, prompt_text: str = "", usage_chunk: bool = False
                ) -> Iterator[p.Completion]:
        if prompt_text:
            for i in range(req.n):
                yield p.Completion(rid, [p.CompletionChoice(i, prompt_text, None)], created, self.engine.model)
        generated = 0
        for ev in self.engine.generate(req):
            generated += ev.token is not None
            yield p.Completion(rid, [p.CompletionChoice(ev.index, ev.text, ev.finish_reason)], created,
                               self.engine.model)
        if usage_chunk:
            yield p.Completion(rid, [], created, self.engine.model, _usage(req, generated))


def _include_usage(stream: bool, options) -> bool:
    """stream_options (streaming only): {"include_usage": bool}."""
    if options is None:
        return False
    if not stream:
        raise p.BadRequestError("stream_options", "is only allowed with stream=true")
    if not isinstance(options, dict) or set(options) - {"include_usage"} or \
            not isinstance(options.get("include_usage", False), bool):
        raise p.BadRequestError("stream_options", "must be {\"include_usage\": true|false}")
    return options.get("include_usage", False)


def _usage(req: Request, generated: int) -> p.CompletionUsage:
    return p.CompletionUsage(len(req.prompt), generated, len(req.prompt) + generated)

