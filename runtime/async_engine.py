"""AsyncMLCEngine: MLCEngine for asyncio callers, as MLC's. Requests go to the same scheduler; awaiting
never blocks the event loop (each blocking step runs in a worker thread)."""
from __future__ import annotations

import asyncio

from llmc.runtime.engine import MLCEngine

_END = object()


class AsyncMLCEngine:
    def __init__(self, model, model_lib=None, **kwargs):
        self.engine = MLCEngine(model, model_lib=model_lib, **kwargs)
        self.chat = _Namespace(completions=_Async(self.engine.chat.completions.create))
        self.completions = _Async(self.engine.completions.create)


class _Namespace:
    def __init__(self, **members):
        self.__dict__.update(members)


class _Async:
    def __init__(self, create):
        self._create = create

    async def create(self, **kwargs):
        """The response, or with stream=True an async iterator of chunks."""
        result = await asyncio.to_thread(self._create, **kwargs)
        return _chunks(result) if kwargs.get("stream") else result


async def _chunks(iterator):
    try:
        while True:
            chunk = await asyncio.to_thread(next, iterator, _END)
            if chunk is _END:
                return
            yield chunk
    finally:
        try:
            iterator.close()  # leaving early cancels the request
        except ValueError:  # a worker thread is still inside next(): the request ends with the stream
            pass
