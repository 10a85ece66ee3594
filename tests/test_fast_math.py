"""The polynomial exp/exp2/sigmoid and rational erf/tanh against numpy, and the pass that puts them in place of TVM's calls."""
from __future__ import annotations

import math

import numpy as np
import pytest
import tvm
from tvm.script import tirx as T

from llmc.compiler import fast_math

N = 4096
X = np.concatenate([np.linspace(-140, 140, N - 8), [-1e30, 1e30, -126.5, -0.5, 0.5, 0, 88, -88]]).astype(np.float32)


def run(func, x):
    from llmc import devices as targets

    target = tvm.target.Target(targets.resolve("cpu", None, None).target)
    lib = tvm.compile(tvm.IRModule({"main": func}), target)
    out = tvm.runtime.tensor(np.zeros_like(x))
    lib(tvm.runtime.tensor(x), out)
    return out.numpy()


def elementwise(fn):
    @T.prim_func(s_tir=True)
    def kernel(x: T.Buffer((N,), "float32"), y: T.Buffer((N,), "float32")):
        for i in T.vectorized(N):
            y[i] = fn(x[i])

    return kernel


@pytest.mark.parametrize("name,reference", [
    ("exp2", lambda x: np.exp2(np.clip(x, -127, 127))),
    ("exp", lambda x: np.exp(np.clip(x, -88, 88))),
    ("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
])
def test_polynomial_is_within_a_few_ulp(name, reference):
    x = X if name != "exp" else np.clip(X, -87, 88)  # exp's float32 range
    got = run(elementwise(getattr(fast_math, name)), x)
    with np.errstate(over="ignore"):
        want = reference(x.astype(np.float64))
    normal = np.abs(want) > 2.0 ** -126  # below that the polynomial flushes to 0
    np.testing.assert_allclose(got[normal], want[normal], rtol=4e-7)
    assert np.all(got[~normal] <= 2.0 ** -126)


# the odd functions near 0 (relative error counts there), through their knee, and out to where they are +-1
ODD_X = np.concatenate([np.geomspace(1e-30, 12, N // 2 - 2), [0.0, 1e30]])
ODD_X = np.concatenate([ODD_X, -ODD_X]).astype(np.float32)


@pytest.mark.parametrize("name,reference", [("erf", np.vectorize(math.erf)), ("tanh", np.tanh)])
def test_rational_is_within_a_few_ulp(name, reference):
    got = run(elementwise(getattr(fast_math, name)), ODD_X)
    np.testing.assert_allclose(got, reference(ODD_X.astype(np.float64)), rtol=4e-7, atol=0)


@pytest.mark.parametrize("fn", [T.sigmoid, T.erf, T.tanh])
def test_pass_replaces_the_calls(fn):
    mod = tvm.IRModule({"main": elementwise(fn)})
    fast = fast_math.fast_transcendentals(mod)
    name = f"T.{fn.__name__}"
    assert name in mod.script() and name not in fast.script()
    np.testing.assert_allclose(run(fast["main"], X), run(elementwise(getattr(fast_math, fn.__name__)), X))
