"""float32 X read without a copy: W1 (value_and_grad, d = 100) and W3
(mini-batch epoch, B = 32 and 256, d = 100) on ``X.astype(float32)``.

Each group's "gdcore" entry is the float32 run; the float64 run of the same
workload is an entry too, so its ratio is float64 time / float32 time (the
target: float32 at most 0.6x float64, i.e. ratio >= 1.67). The floors are
``X.sum()`` and the 2-core sum of the float32 array.

Correctness outside the timed calls: the float32 results equal the float64
ones on the same values bit for bit.
"""

import numpy as np
import pytest

import gdcore

D = 100


@pytest.fixture(scope="module")
def data32(regression_data):
    data = regression_data(D)
    X32 = data.X.astype(np.float32)
    return X32, X32.astype(np.float64), data.y


def _w1(X, y):
    return gdcore.value_and_grad(X, y, np.full(D, 0.01), 0.1)


def _w3(X, y, B):
    return gdcore.fit(X, y, method="minibatch", batch_size=B, lr=1e-2, epochs=1,
                      shuffle=False)


GROUPS = [pytest.param("W1", None, marks=pytest.mark.benchmark(group="float32 W1 d=100")),
          pytest.param("W3", 32, marks=pytest.mark.benchmark(group="float32 W3 B=32 d=100")),
          pytest.param("W3", 256, marks=pytest.mark.benchmark(group="float32 W3 B=256 d=100"))]


def _run(work, X, y, B):
    return _w1(X, y) if work == "W1" else _w3(X, y, B)


@pytest.mark.parametrize("work,B", GROUPS)
def test_float32_gdcore(bench, data32, work, B):
    X32, X64, y = data32
    got = bench(lambda: _run(work, X32, y, B), impl="gdcore float32 X", role="gdcore")
    small = slice(0, 5_000)
    a, b = _run(work, X32[small], y[small], B), _run(work, X64[small], y[small], B)
    if work == "W1":
        for u, v in zip(a, b, strict=True):
            np.testing.assert_array_equal(u, v)
    else:
        np.testing.assert_array_equal(a.w, b.w)
    assert got is not None


@pytest.mark.parametrize("work,B", GROUPS)
def test_float32_against_float64(bench, data32, work, B):
    _, X64, y = data32
    bench(lambda: _run(work, X64, y, B), impl="gdcore float64 X (same values)")


@pytest.mark.parametrize("work,B", GROUPS)
def test_float32_floor(bench, data32, work, B):
    X32 = data32[0]
    assert np.isfinite(bench(X32.sum, impl="floor X.sum() (float32)", role="floor"))


@pytest.mark.parametrize("work,B", GROUPS)
def test_float32_floor_two_cores(bench, data32, two_core_sum, work, B):
    X32 = data32[0]
    assert np.isfinite(bench(lambda: two_core_sum(X32), impl="2-core floor (float32)",
                             role="floor2"))
