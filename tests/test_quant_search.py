"""The default group quantizer: never worse than MLC's rule, deterministic, and MLC's rule kept byte for byte."""
import os
import subprocess
import sys

import numpy as np
import pytest

from llmc.quant import group, scheme
from weights_io import dequantize_group


def groups_of(kind: str, rng, n=64, k=320) -> np.ndarray:
    if kind == "normal":
        w = rng.standard_normal((n, k))
    elif kind == "heavy-tailed":  # Student t with 2 degrees of freedom: outliers in most groups
        w = rng.standard_t(2, (n, k))
    elif kind == "one-outlier":
        w = rng.standard_normal((n, k)) * 0.01
        w[:, ::37] = 3.0
    else:  # "mixed-scale": rows of very different magnitude, some all-zero groups, a ragged tail
        w = rng.standard_normal((n, k - 7)) * rng.choice([1e-4, 1.0, 200.0], size=(n, 1))
        w[::5, :40] = 0.0
    return (w * 0.02).astype(np.float32)


def group_errors(w: np.ndarray, quant: str, mode: str, weighted: bool = True) -> np.ndarray:
    """Each group's squared reconstruction error, from an independent dequantizer of the stored bits;
    weighted as the search weighs it (|w| + the group's RMS, llama.cpp's K-quant weighting) or plain."""
    s = scheme(quant)
    q, scale, _ = group.group_quantize(w, s, mode)
    ref = w.astype(s.model_dtype).astype(np.float64)
    deq = dequantize_group(q, scale, s.bits, s.group_size, w.shape[1])
    n, padded = w.shape[0], s.groups(w.shape[1]) * s.group_size
    sq, x = np.zeros((n, padded)), np.zeros((n, padded))
    sq[:, :w.shape[1]], x[:, :w.shape[1]] = np.square(deq - ref), ref
    sq, x = sq.reshape(n, -1, s.group_size), x.reshape(n, -1, s.group_size)
    weights = np.abs(x) + np.sqrt(np.square(x).mean(axis=2, keepdims=True)) if weighted else 1.0
    return (sq * weights).sum(axis=2)


@pytest.mark.parametrize("quant", ["q4f16_1", "q3f16_1", "q4f32_1"])
@pytest.mark.parametrize("kind", ["normal", "heavy-tailed", "one-outlier", "mixed-scale"])
def test_no_group_is_worse_than_mlcs_rule(quant, kind):
    w = groups_of(kind, np.random.default_rng(7))
    ours, mlc = group_errors(w, quant, "search"), group_errors(w, quant, "mlc")
    # float rounding of the expanded error may pick a tie-breaker a hair worse than MLC's own candidate
    assert np.all(ours <= mlc * (1 + 1e-5) + 1e-30)
    if kind in ("normal", "heavy-tailed"):
        assert ours.sum() < 0.9 * mlc.sum()  # and clearly better overall where the extra level has room to help
        # the plain squared error (what convert_weight reports) falls too
        assert group_errors(w, quant, "search", False).sum() < 0.9 * group_errors(w, quant, "mlc", False).sum()


def test_reported_error_is_the_reconstruction_error():
    s = scheme("q4f16_1")
    w = groups_of("normal", np.random.default_rng(3))
    q, scale, (err, ref) = group.group_quantize(w, s)
    deq = dequantize_group(q, scale, 4, 32, w.shape[1])
    truth = w.astype(np.float16).astype(np.float64)
    assert err == pytest.approx(np.square(deq - truth).sum(), rel=1e-4)
    assert ref == pytest.approx(np.square(truth).sum(), rel=1e-4)


def test_importance_moves_the_error_to_where_it_matters():
    s = scheme("q4f16_1")
    w = groups_of("heavy-tailed", np.random.default_rng(5))
    importance = np.ones(w.shape[1], np.float32)
    importance[::4] = 50.0
    plain = dequantize_group(*group.group_quantize(w, s)[:2], 4, 32, w.shape[1])
    weighted = dequantize_group(*group.group_quantize(w, s, importance=importance)[:2], 4, 32, w.shape[1])
    ref = w.astype(np.float16).astype(np.float64)

    def loss(deq):
        return float((np.square(deq - ref) * importance).sum())

    assert loss(weighted) < loss(plain)


DIGEST = """
import hashlib, sys
import numpy as np
from llmc.quant import group, scheme
group._ROWS_PER_CHUNK_ELEMS = int(sys.argv[2])
rng = np.random.default_rng(20261202)
h = hashlib.sha256()
for shape in ((48, 96), (7, 100), (5, 33)):
    w = (rng.standard_normal(shape) * rng.choice([0.01, 1.0, 30.0], size=(shape[0], 1))).astype(np.float32)
    w[0, :40] = 0
    w[1, 3] = 900.0
    q, sc, _ = group.group_quantize(w, scheme(sys.argv[1]), sys.argv[3])
    h.update(q.tobytes()); h.update(sc.tobytes())
print(h.hexdigest()[:16])
"""
# MLC's rule, as bytes: computed by the quantizer before the search existed (commit 8c02267), whose
# numerics were checked against MLC's own TIR element by element.
MLC_DIGESTS = {"q4f16_1": "f921a50cb2d1f6c6", "q4f32_1": "b06318d4d1bc0323", "q3f16_1": "664a51d56ead00c7"}


def digest(quant: str, mode: str, threads: int, chunk: int = 1 << 22) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    return subprocess.run([sys.executable, "-c", DIGEST, quant, str(chunk), mode], env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.mark.parametrize("quant", sorted(MLC_DIGESTS))
def test_mlc_mode_is_byte_identical_to_mlcs_rule(quant):
    assert digest(quant, "mlc", 2) == MLC_DIGESTS[quant]


def test_search_bytes_do_not_depend_on_threads_or_chunking():
    first = digest("q4f16_1", "search", 1)
    assert first == digest("q4f16_1", "search", 2) == digest("q4f16_1", "search", 2, chunk=100)
    assert first != MLC_DIGESTS["q4f16_1"]


def edge_case_weights(source: str) -> np.ndarray:
    """Values that reach every branch: all-zero groups, scales that round to float16 subnormals or to
    zero, huge values, a ragged tail."""
    rng = np.random.default_rng(7)
    magnitude = rng.choice([0.0, 1e-8, 3e-6, 1e-3, 1.0, 900.0], size=(60, 1))
    w = (rng.standard_normal((60, 333)) * magnitude).astype(source)
    w[3, :45] = 0.0
    w[4, 7] = -w[4, 7] * 1e3
    return w


@pytest.mark.parametrize("quant", ["q4f16_1", "q4f32_1", "q3f16_1"])
@pytest.mark.parametrize("source", ["float16", "float32"])
def test_mlc_rule_in_c_gives_numpys_bytes(quant, source):
    """The C rule (setup.py builds it) against the numpy definition, byte for byte."""
    assert group.c_library() is not None, "llmc.quant._group was not built (pip install -e .)"
    w, s = edge_case_weights(source), scheme(quant)
    c_q, c_scale, c_err = group.group_quantize(w, s, "mlc")
    np_q, np_scale, np_err = group.group_quantize(w, s, "mlc", native=False)
    assert np.array_equal(c_q, np_q) and c_scale.tobytes() == np_scale.tobytes()
    assert np.allclose(c_err, np_err, rtol=1e-4)


@pytest.mark.parametrize("quant", ["q4f16_1", "q4f32_1", "q3f16_1"])
@pytest.mark.parametrize("kind", ["edge-cases", "heavy-tailed", "calibrated"])
def test_search_in_c_agrees_with_the_numpy_reference(quant, kind):
    """The C search (what convert runs; its sums run in its own fixed order) picks the numpy reference's
    codes and scale in nearly every group, and where they differ the two errors are a rounding apart."""
    rng = np.random.default_rng(11)
    w = edge_case_weights("float32") if kind == "edge-cases" else groups_of("heavy-tailed", rng, 96, 320)
    importance = rng.random(w.shape[1]).astype(np.float32) + 0.1 if kind == "calibrated" else None
    s = scheme(quant)
    c_q, c_scale, (c_err, ref) = group.group_quantize(w, s, "search", importance)
    np_q, np_scale, (np_err, _) = group.group_quantize(w, s, "search", importance, native=False)
    per_group = s.group_size // s.per_word
    # float32 scales are the least-squares value itself, so its last bits follow the sums' order
    close = np.isclose(c_scale.astype(np.float64), np_scale.astype(np.float64), rtol=1e-5, atol=0)
    same = np.all(c_q.reshape(len(w), -1, per_group) == np_q.reshape(len(w), -1, per_group), axis=2) & close
    assert same.mean() > 0.98, same.mean()
    assert abs(c_err - np_err) <= 1e-3 * np_err + 1e-12 * ref


def test_search_without_the_c_library_says_what_is_missing(monkeypatch):
    """The search's bytes are the C's, so there is no silent numpy stand-in; MLC's rule (the same bytes
    either way) still runs."""
    from llmc.errors import NotAvailable

    monkeypatch.setattr(group, "c_library", lambda: None)
    w = edge_case_weights("float32")
    with pytest.raises(NotAvailable, match=r"llmc.quant._group.*not built"):
        group.group_quantize(w, scheme("q4f16_1"), "search")
    assert group.group_quantize(w, scheme("q4f16_1"), "mlc")[0].shape == (60, 44)
