"""Continuous batching: one thread owns the library and the KV cache and serves every request.

Each step of the loop: admit waiting requests while sequence slots and KV tokens allow (a request waits,
it is not refused, when the cache is busy); run one prefill chunk of the oldest request still prefilling
(a long prompt holds the others back one chunk at a time, never its whole length); sample the next token
of every decoding choice of every request; run one decode over all of them together. Events go to each
request's queue; a request whose caller stops listening is cancelled and frees its slots at the next step.

Prefix reuse: a finished request's sequence (prompt and reply) stays in the cache while slots and KV
tokens allow, least recently used first out; a new request forks the cached sequence that shares the
longest prefix with its prompt and prefills only the rest (the next turn of a conversation prefills only
its new message).
"""
from __future__ import annotations

import collections
import queue
import threading
import time

import numpy as np

from llmc.runtime.library import PAGE_SIZE

_DONE = object()
MIN_REUSE = PAGE_SIZE  # tokens a prompt must share with a cached sequence to fork it


class Job:
    """One request inside the scheduler: its choices, how far its prompt got, and its event queue."""

    def __init__(self, req, need: int):
        self.req, self.need = req, need
        self.events: queue.Queue = queue.Queue()
        self.cancelled = threading.Event()
        self.seq_ids: list[int] = []
        self.choices: list = []
        self.prefilled = 0
        self.started = False  # its first sequence exists in the cache (added, or forked from a cached one)
        self.decoding = False
        self.failed = False


class Scheduler:
    def __init__(self, engine):
        self.engine = engine
        self.waiting: collections.deque[Job] = collections.deque()
        self.running: list[Job] = []
        self.reserved = 0  # KV tokens promised to running requests
        # finished sequences kept for their prefix: seq id -> tokens, least recently used first; none under
        # LongRoPE, whose keys change rotation with the sequence's length
        self.cached: collections.OrderedDict[int, list[int]] = collections.OrderedDict()
        self.reuse = engine.lib.long_from is None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="llmc-scheduler", daemon=True)
        self._thread.start()

    # ---- the callers' side -------------------------------------------------------------------
    def submit(self, req, need: int) -> Job:
        job = Job(req, need)
        with self._cond:
            self.waiting.append(job)
            self._cond.notify()
        return job

    def events(self, job: Job):
        """The job's events as they come; leaving early (close, an exception) cancels the job."""
        try:
            while True:
                event = job.events.get()
                if event is _DONE:
                    return
                if isinstance(event, BaseException):
                    raise event
                yield event
        finally:
            job.cancelled.set()
            with self._cond:
                self._cond.notify()

    def idle(self, timeout: float = 5.0) -> bool:
        """Wait until no request is waiting or running (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.waiting or self.running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # ---- the loop ---------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self.waiting and not self.running:
                    self._cond.wait()
            try:
                self._step()
            except Exception as exc:  # noqa: BLE001 - the batched decode failed: every request in it fails
                for job in list(self.running):
                    self._fail(job, exc)
            with self._cond:
                self._cond.notify_all()

    def _step(self) -> None:
        for job in [j for j in self.running if j.cancelled.is_set()]:
            self._finish(job)
        self._admit()
        prefilling = next((j for j in self.running if not j.decoding), None)
        if prefilling is not None:
            self._isolated(prefilling, self._prefill_chunk, prefilling)
        decoding = [(j, c) for j in self.running if j.decoding for c in j.choices if c.finish_reason is None]
        for job, c in decoding:
            self._isolated(job, self._sample, job, c)
        for job in [j for j in self.running if j.decoding and all(c.finish_reason for c in j.choices)]:
            self._finish(job)
        going = [(j, c) for j, c in decoding if c.finish_reason is None and not (j.cancelled.is_set() or j.failed)]
        if going:
            e = self.engine
            t0 = time.perf_counter()
            rows = e.lib.decode(e._kv, [c.seq_id for _, c in going], [c.generated[-1] for _, c in going])
            e._record("decode", len(going), time.perf_counter() - t0)
            for (_, c), row in zip(going, rows):
                c.logits = row

    def _admit(self) -> None:
        e = self.engine
        with self._cond:
            while self.waiting:
                job = self.waiting[0]
                if job.cancelled.is_set():
                    self.waiting.popleft()
                    job.events.put(_DONE)
                    continue
                while self.cached and (len(e._free) < job.req.n or self._kv_tokens() + job.need > e.max_total):
                    self._evict()
                if len(e._free) < job.req.n or (self.running and self.reserved + job.need > e.max_total):
                    return
                self.waiting.popleft()
                job.seq_ids = [e._free.pop() for _ in range(job.req.n)]
                self.reserved += job.need
                self.running.append(job)
                self._isolated(job, self._start, job)

    def _sample(self, job: Job, choice) -> None:
        for event in self.engine._step(choice, job.req):
            job.events.put(event)

    def _start(self, job: Job) -> None:
        job.choices = self.engine.new_choices(job.req, job.seq_ids)
        self._fork_prefix(job)

    def _isolated(self, job: Job, work, *args) -> None:
        """Run one request's own work (its sampling, its prefill); an error there fails that request only."""
        try:
            work(*args)
        except Exception as exc:  # noqa: BLE001 - handed to the request's caller, who raises it
            self._fail(job, exc)

    def _fail(self, job: Job, exc: BaseException) -> None:
        job.events.put(exc)
        job.failed = True
        self._finish(job)

    def _kv_tokens(self) -> int:
        return self.reserved + sum(len(t) + PAGE_SIZE for t in self.cached.values())

    def _evict(self) -> None:
        seq, _ = self.cached.popitem(last=False)
        self.engine.lib.remove_sequence(self.engine._kv, seq)
        self.engine._free.append(seq)

    def _fork_prefix(self, job: Job) -> None:
        """Start the job from the cached sequence sharing the longest prefix with its prompt, if any."""
        prompt, best, shared = job.req.prompt, None, 0
        for seq, tokens in self.cached.items():
            n = _common_prefix(tokens, prompt)
            if n > shared:
                best, shared = seq, n
        shared = min(shared, len(prompt) - 1)  # at least one token to prefill: its logits start decoding
        if best is None or shared < MIN_REUSE:
            return
        e = self.engine
        e.lib.fork_sequence(e._kv, best, job.seq_ids[0], shared)
        self.cached.move_to_end(best)
        job.prefilled, job.started = shared, True

    def _prefill_chunk(self, job: Job) -> None:
        from llmc.runtime.engine import Event

        e, req = self.engine, job.req
        if not job.started:
            e.lib.add_sequence(e._kv, job.seq_ids[0])
            job.started = True
        start = job.prefilled
        chunk = req.prompt[start:start + e.lib.prefill_chunk]
        t0 = time.perf_counter()
        if req.prompt_scores is None:
            logits = e.lib.prefill(e._kv, job.seq_ids[0], chunk)
        else:
            logits = e.lib.prefill_every_position(e._kv, job.seq_ids[0], chunk,
                                                  lambda at, rows: e._score(req, start + at, rows))
        e._record("prefill", len(chunk), time.perf_counter() - t0)
        job.prefilled += len(chunk)
        if job.prefilled < len(req.prompt):
            return
        for child in job.seq_ids[1:]:
            e.lib.fork_sequence(e._kv, job.seq_ids[0], child)
        for c in job.choices:
            c.logits = np.asarray(logits)
            if req.max_tokens == 0:
                c.finish_reason = "length"
                job.events.put(Event(c.index, finish_reason="length"))
        job.decoding = True
        if all(c.finish_reason for c in job.choices):
            self._finish(job)

    def _finish(self, job: Job) -> None:
        e = self.engine
        if job not in self.running:
            return
        keep = job.seq_ids[0] if self.reuse and job.decoding and not (job.cancelled.is_set() or job.failed) else None
        for s in job.seq_ids:
            if s == keep:
                continue
            try:
                e.lib.remove_sequence(e._kv, s)
            except Exception:  # noqa: BLE001 - never added (its prefill had not started): nothing to free
                pass
        with self._cond:  # one change as idle() sees it: the job gone and its slots free
            self.running.remove(job)
            e._free.extend(s for s in job.seq_ids if s != keep)
            if keep is not None:
                self.cached[keep] = e.lib.tokens(keep)
            self.reserved -= job.need
        job.events.put(_DONE)

    def free_sequences(self) -> int:
        """Sequences a new request can have: free ones and cached prefixes (evicted on demand)."""
        with self._cond:
            return len(self.engine._free) + len(self.cached)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
