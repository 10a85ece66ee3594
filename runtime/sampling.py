"""Choosing the next token from logits: penalties, temperature, top-p, a seeded generator."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


def apply_penalties(logits: np.ndarray, params: SamplingParams, prompt: list[int],
                    generated: list[int]) -> np.ndarray:
    """OpenAI's presence/frequency penalties over generated tokens; Hugging Face's repetition
    penalty over prompt and generated tokens."""
    if params.presence_penalty == 0 and params.frequency_penalty == 0 and params.repetition_penalty == 1:
        return logits
    logits = logits.astype(np.float32, copy=True)
    if generated and (params.presence_penalty or params.frequency_penalty):
        ids, counts = np.unique(np.asarray(generated), return_counts=True)
        logits[ids] -= params.presence_penalty + params.frequency_penalty * counts
    if params.repetition_penalty != 1:
        seen = np.unique(np.asarray(prompt + generated, dtype=np.int64))
        seen = seen[seen < len(logits)]
        vals = logits[seen]
        logits[seen] = np.where(vals < 0, vals * params.repetition_penalty, vals / params.repetition_penalty)
    return logits


def choose(logits: np.ndarray, params: SamplingParams, rng: np.random.Generator) -> int:
    if params.temperature <= 0:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / params.temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    if params.top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        cumulative = np.cumsum(probs[order])
        keep = order[: int(np.searchsorted(cumulative, params.top_p)) + 1]
        mask = np.zeros_like(probs)
        mask[keep] = probs[keep]
        probs = mask / mask.sum()
    return int(rng.choice(len(probs), p=probs))
