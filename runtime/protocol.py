"""Response objects shaped like the OpenAI Python client's (attribute access, model_dump())."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


class _Dumpable:
    def model_dump(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TopLogprob(_Dumpable):
    token: str
    logprob: float
    bytes: list[int]


@dataclass
class TokenLogprob(_Dumpable):
    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[TopLogprob] = field(default_factory=list)


@dataclass
class ChoiceLogprobs(_Dumpable):
    content: list[TokenLogprob]


@dataclass
class ChatCompletionMessage(_Dumpable):
    content: str
    role: str = "assistant"


@dataclass
class Choice(_Dumpable):
    index: int
    message: ChatCompletionMessage
    finish_reason: str
    logprobs: ChoiceLogprobs | None = None


@dataclass
class CompletionUsage(_Dumpable):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass
class ChatCompletion(_Dumpable):
    id: str
    choices: list[Choice]
    created: int
    model: str
    usage: CompletionUsage
    object: str = "chat.completion"


@dataclass
class ChoiceDelta(_Dumpable):
    content: str | None = None
    role: str | None = None


@dataclass
class ChunkChoice(_Dumpable):
    index: int
    delta: ChoiceDelta
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


@dataclass
class ChatCompletionChunk(_Dumpable):
    id: str
    choices: list[ChunkChoice]
    created: int
    model: str
    usage: CompletionUsage | None = None
    object: str = "chat.completion.chunk"


@dataclass
class Logprobs(_Dumpable):
    """Legacy completions' logprobs: parallel lists, one entry per generated token."""
    tokens: list[str] = field(default_factory=list)
    token_logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[dict[str, float]] = field(default_factory=list)
    text_offset: list[int] = field(default_factory=list)


@dataclass
class CompletionChoice(_Dumpable):
    index: int
    text: str
    finish_reason: str | None
    logprobs: Logprobs | None = None


@dataclass
class Completion(_Dumpable):
    id: str
    choices: list[CompletionChoice]
    created: int
    model: str
    usage: CompletionUsage | None = None
    object: str = "text_completion"


class BadRequestError(ValueError):
    """An invalid request; `param` names the bad argument (as OpenAI's API errors do)."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param
