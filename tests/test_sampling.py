"""Sampling: the fast nucleus and inverse-CDF paths pick exactly what their definitions pick."""
import numpy as np
import pytest

from llmc.runtime.sampling import SamplingParams, choose, inverse_cdf, nucleus


def full_sort_nucleus(probs: np.ndarray, top_p: float) -> np.ndarray:
    order = np.argsort(-probs, kind="stable")
    mass = top_p * probs.sum(dtype=np.float64)
    return order[: int(np.searchsorted(np.cumsum(probs[order], dtype=np.float64), mass)) + 1]


@pytest.mark.parametrize("ties", [False, True])
def test_nucleus_matches_a_full_sort(ties):
    rng = np.random.default_rng(0)
    for _ in range(200):
        logits = rng.standard_normal(int(rng.integers(2, 6000))) * rng.uniform(0.3, 30)
        if ties:
            logits = np.round(logits)
        probs = np.exp(logits - logits.max()).astype(np.float32)
        top_p = rng.uniform(0.01, 0.999)
        assert np.array_equal(nucleus(probs, top_p), full_sort_nucleus(probs, top_p))


def test_inverse_cdf_matches_the_cumulative_sum_and_skips_zero_weights():
    rng = np.random.default_rng(1)
    for _ in range(200):
        weights = rng.random(int(rng.integers(1, 3000))).astype(np.float32)
        weights[rng.random(len(weights)) < 0.4] = 0
        weights[-1] = weights[-1] or 1.0
        cdf = np.cumsum(weights, dtype=np.float64)
        for u in rng.random(20):
            picked = inverse_cdf(weights, u)
            assert weights[picked] > 0
            assert picked == int(np.searchsorted(cdf, u * cdf[-1], side="right"))


def test_choose_samples_the_renormalized_nucleus():
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    params = SamplingParams(temperature=1.0, top_p=0.8)
    rng = np.random.default_rng(2)
    draws = np.array([choose(np.log(probs), params, rng) for _ in range(20000)])
    counts = np.bincount(draws, minlength=4)
    assert counts[2] == counts[3] == 0
    share = counts[0] / len(draws)
    assert abs(share - 0.625) < 4 * np.sqrt(0.625 * 0.375 / len(draws))


def test_choose_is_greedy_at_temperature_zero_and_repeatable_with_a_seed():
    logits = np.random.default_rng(3).standard_normal(50000).astype(np.float32)
    assert choose(logits, SamplingParams(temperature=0), np.random.default_rng(0)) == int(np.argmax(logits))
    params = SamplingParams(temperature=0.8, top_p=0.95)
    first = [choose(logits, params, g) for g in [np.random.default_rng(7)] for _ in range(30)]
    again = [choose(logits, params, g) for g in [np.random.default_rng(7)] for _ in range(30)]
    assert first == again and len(set(first)) > 1
