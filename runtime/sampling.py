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
    scaled = logits.astype(np.float32) / np.float32(params.temperature)
    probs = np.exp(scaled - scaled.max())
    ids = nucleus(probs, params.top_p) if params.top_p < 1.0 else None
    k = inverse_cdf(probs if ids is None else probs[ids], rng.random())
    return k if ids is None else int(ids[k])


CDF_BLOCK = 256


def inverse_cdf(weights: np.ndarray, u: float) -> int:
    """The index whose slice of the cumulative weights holds u * total (what Generator.choice(p=...)
    picks for the uniform draw u); never a zero weight. A cumulative sum is sequential and costs
    more than the rest of sampling over a whole vocabulary, so blocks are summed first and only
    the chosen block is scanned."""
    blocks = np.pad(weights, (0, -len(weights) % CDF_BLOCK)).reshape(-1, CDF_BLOCK).sum(axis=1, dtype=np.float64)
    ends = np.cumsum(blocks)
    target = u * ends[-1]
    b = min(int(np.searchsorted(ends, target, side="right")), len(ends) - 1)
    block = weights[b * CDF_BLOCK:(b + 1) * CDF_BLOCK]
    k = int(np.searchsorted(np.cumsum(block, dtype=np.float64), target - (ends[b - 1] if b else 0.0), side="right"))
    k = int(np.flatnonzero(block[:k + 1])[-1])  # rounding can step past the block's last weight
    return b * CDF_BLOCK + k


def nucleus(probs: np.ndarray, top_p: float) -> np.ndarray:
    """Ids of the most likely tokens, most likely first (ties: lower id first), up to and including
    the one where their share of the total reaches top_p. Sorting the whole vocabulary costs as much
    as a decode step, so only the tokens above a threshold are sorted: the threshold drops until
    they hold enough mass, and everything below it is less likely than all of them."""
    mass = top_p * probs.sum(dtype=np.float64)
    threshold = probs.max()
    while True:
        threshold = threshold / 16
        ids = np.flatnonzero(probs >= threshold)
        if threshold == 0 or probs[ids].sum(dtype=np.float64) >= mass:
            break
    ids = ids[np.argsort(-probs[ids], kind="stable")]
    return ids[: int(np.searchsorted(np.cumsum(probs[ids], dtype=np.float64), mass)) + 1]
