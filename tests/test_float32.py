"""float32 data without a copy.

A C-contiguous float32 ``X`` (in memory or memory-mapped) reaches the
compiled kernels as it is; each value is made a double as it is loaded
(exactly), and everything else stays float64. So a float32 ``X`` gives the
bits of ``X.astype(numpy.float64)`` in ``fit`` (every method and option),
``value_and_grad``, ``predict`` and ``max_stable_lr``, and the reference
backend agrees (``rtol=1e-9``).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import gdcore


@pytest.fixture(scope="module")
def data():
    X, y, _ = gdcore.make_regression(301, 7, noise=0.2, bias=0.4, seed=6)
    X32 = (X * 3 + 1).astype(np.float32)
    return X32, X32.astype(np.float64), y


OPTIONS = {
    "plain": dict(seed=1),
    "momentum shuffled": dict(momentum=0.9, seed=2),
    "standardize auto": dict(standardize=True, lr="auto", seed=3),
    "weights validation": dict(sample_weight=np.linspace(0.5, 2.0, 301),
                               validation_fraction=0.2, seed=4),
    "adam proximal": dict(optimizer="adam", l1=0.01, l1_method="proximal", seed=5),
}


@pytest.mark.parametrize("method", ["sgd", "minibatch", "batch"])
@pytest.mark.parametrize("name", list(OPTIONS))
def test_fit_on_float32_is_fit_on_its_float64_values(data, method, name):
    X32, X64, y = data
    options = dict(dict(method=method, batch_size=16, lr=0.001, epochs=4), **OPTIONS[name])
    single = gdcore.fit(X32, y, **options)
    double = gdcore.fit(X64, y, **options)
    assert single.copied == ()
    np.testing.assert_array_equal(single.w, double.w)
    assert single.b == double.b
    np.testing.assert_array_equal(single.history, double.history)
    if single.val_loss is not None:
        np.testing.assert_array_equal(single.val_loss, double.val_loss)
    # several outputs, many epochs in one call
    Y = np.c_[y, -y]
    np.testing.assert_array_equal(gdcore.fit(X32, Y, **{**options, "epochs": 30}).w,
                                  gdcore.fit(X64, Y, **{**options, "epochs": 30}).w)


@pytest.mark.parametrize("method", ["minibatch", "batch"])
def test_rows_longer_than_one_vector_of_the_dot_product(method):
    # 19 features: the 8-wide part of the dot product and its tail both read
    # floats (the full-data sums and the mini-batch loop convert in the
    # arithmetic, without a scratch row)
    X, y, _ = gdcore.make_regression(203, 19, noise=0.3, seed=8)
    X32 = (X * 2 - 0.5).astype(np.float32)
    weights = np.linspace(0.2, 3.0, 203)
    for Y in (y, np.c_[y, 2 * y, -y]):
        options = dict(method=method, batch_size=10, lr=0.002, epochs=3, momentum=0.5,
                       sample_weight=weights, seed=9, n_threads=2)
        single = gdcore.fit(X32, Y, **options)
        double = gdcore.fit(X32.astype(np.float64), Y, **options)
        np.testing.assert_array_equal(single.w, double.w)
        np.testing.assert_array_equal(single.b, double.b)
    w = np.linspace(-1, 1, 19)
    single = gdcore.value_and_grad(X32, y, w, 0.5)
    double = gdcore.value_and_grad(X32.astype(np.float64), y, w, 0.5)
    assert single[0] == double[0]
    np.testing.assert_array_equal(single[1], double[1])
    assert single[2] == double[2]


def test_the_reference_backend_agrees(data, assert_agree):
    X32, _, y = data
    options = dict(method="minibatch", batch_size=9, lr=0.001, epochs=2, seed=1,
                   standardize=True)
    assert_agree(gdcore.fit(X32[:60], y[:60], backend="reference", **options),
                 gdcore.fit(X32[:60], y[:60], **options))


def test_value_and_grad_predict_and_max_stable_lr(data):
    X32, X64, y = data
    w = np.linspace(-1, 1, 7)
    for a, b in zip(gdcore.value_and_grad(X32, y, w, 0.3),
                    gdcore.value_and_grad(X64, y, w, 0.3), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(gdcore.predict(X32, w, 0.3), gdcore.predict(X64, w, 0.3))
    W = np.c_[w, 2 * w]
    np.testing.assert_array_equal(gdcore.predict(X32, W, [0.1, 0.2]),
                                  gdcore.predict(X64, W, [0.1, 0.2]))
    assert gdcore.max_stable_lr(X32) == gdcore.max_stable_lr(X64)


def test_copy_false_takes_float32_and_a_memmap_is_read_in_place(tmp_path, data):
    X32, X64, y = data
    np.save(tmp_path / "X.npy", X32)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    res = gdcore.fit(mapped, y, copy=False, epochs=2, seed=0)
    assert res.copied == ()
    # a memmap is shuffled in blocks of about 64 MiB of X: of float32 rows here
    block = gdcore._api.MEMMAP_BLOCK_BYTES // (4 * 7)
    np.testing.assert_array_equal(res.w, gdcore.fit(X64, y, epochs=2, seed=0,
                                                    shuffle_block=block).w)
    with pytest.raises(ValueError, match="float64 \\(or float32\\) C-contiguous"):
        gdcore.fit(X32.astype(np.float16), y, copy=False)


def test_no_copy_of_a_large_float32_X():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400_000, 10), dtype=np.float32)       # 16 MB
    y = rng.standard_normal(400_000)
    tracemalloc.start()
    gdcore.fit(X, y, method="minibatch", epochs=1, seed=0)
    gdcore.value_and_grad(X, y, np.zeros(10), 0.0)
    gdcore.predict(X, np.zeros(10), 0.0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # the index array (3.2 MB), y-sized arrays and predict's output and blocks;
    # a float64 copy of X would be 32 MB
    assert peak < 12e6, peak
