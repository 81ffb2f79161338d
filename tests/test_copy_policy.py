"""Who copies what: copy=False refuses conversions, result.copied records them,
and memory-mapped data is shuffled block by block."""

from __future__ import annotations

import numpy as np
import pytest

import gdcore
from gdcore import _api, _engines, _options, _state


@pytest.fixture(scope="module")
def data():
    X, y, _ = gdcore.make_regression(50, 3, noise=0.1, seed=0)
    return X, y


def test_nothing_copied_for_float64_c_arrays(data):
    X, y = data
    assert gdcore.fit(X, y, epochs=1, seed=0, copy=False).copied == ()
    column = np.ascontiguousarray(X[:, 0])
    assert gdcore.fit(column, y, epochs=1, seed=0).copied == ()     # 1-D: a view
    assert gdcore.fit(X[:, 0], y, epochs=1, seed=0).copied == ("X",)   # strided column


@pytest.mark.parametrize("convert,name", [
    (lambda X, y: (X.astype(np.float16), y), "X"),
    (lambda X, y: (np.asfortranarray(X.astype(np.float32)), y), "X"),
    (lambda X, y: (np.asfortranarray(X), y), "X"),
    (lambda X, y: (X.tolist(), y), "X"),
    (lambda X, y: (X, y.astype(np.float32)), "y"),
    (lambda X, y: (X, y[::-1]), "y"),
])
def test_copy_false_refuses_conversion_and_copy_true_records_it(data, convert, name):
    X, y = convert(*data)
    kinds = "float64 \\(or float32\\)" if name == "X" else "float64"
    with pytest.raises(ValueError, match=rf"^{name} must already be a {kinds} C-contiguous"):
        gdcore.fit(X, y, epochs=1, copy=False)
    result = gdcore.fit(X, y, epochs=1, seed=0)
    assert result.copied == (name,)
    # the conversion is what numpy.ascontiguousarray(..., float64) gives
    converted = [np.ascontiguousarray(a, dtype=np.float64) for a in (X, y)]
    np.testing.assert_array_equal(result.w, gdcore.fit(*converted, epochs=1, seed=0).w)


def test_copy_must_be_bool(data):
    with pytest.raises(TypeError, match="copy must be True or False"):
        gdcore.fit(*data, copy=1)


def _order(n, size, seed, rows=None):
    """The first epoch's sample order of a run with shuffle_block=size, as the
    trainers of both backends draw it (their shared InMemory)."""
    config = _options.Config(method="sgd", batch_size=1, epochs=1, shuffle=True, seed=seed,
                             shuffle_block=size)
    state = _api.start_state(config, {"w0": None, "b0": 0.0, "warm_start": None}, 1, None)
    data = _state.Data(X=np.zeros((n, 1)), y=np.zeros(n), train_rows=rows)
    return _engines.InMemory(data, config).epoch_order(state).copy()


@pytest.mark.parametrize("n,size", [(100, 7), (64, 8), (10, 100), (9, 1)])
def test_block_shuffle_visits_whole_blocks_one_at_a_time(n, size):
    """The rows are visited block by block: each block of `size` consecutive rows
    (the last one may be shorter) in one run, shuffled; all rows once; the
    blocks' order random (seeded)."""
    order = _order(n, size, seed=3)
    assert sorted(order.tolist()) == list(range(n))
    starts = []
    at = 0
    while at < n:
        first = order[at] // size * size          # the block the next row belongs to
        length = min(size, n - first)
        block = order[at:at + length]
        assert sorted(block.tolist()) == list(range(first, first + length))
        starts.append(first)
        at += length
    np.testing.assert_array_equal(order, _order(n, size, seed=3))
    if n // size > 3:
        assert starts != sorted(starts) or not np.array_equal(order, _order(n, size, seed=4))


def test_fit_visits_the_block_order(numpy_fit, backend):
    """fit with shuffle_block visits the rows in that order (both backends)."""
    X, y, _ = gdcore.make_regression(40, 2, noise=0.1, seed=5)
    result = gdcore.fit(X, y, method="sgd", lr=0.05, epochs=1, seed=3, shuffle_block=6,
                        backend=backend)
    w, b, history = numpy_fit(X, y, lr=0.05, epochs=1, batch_size=1,
                              orders=[_order(40, 6, seed=3)])
    np.testing.assert_allclose(result.w, w, rtol=1e-12, atol=1e-14)
    assert result.b == pytest.approx(b, rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(result.history, history, rtol=1e-12)


def test_block_shuffle_of_training_rows_only():
    rows = np.array([0, 2, 3, 5, 8, 9, 11], dtype=np.intp)
    order = _order(12, 3, seed=1, rows=rows)
    assert sorted(order.tolist()) == rows.tolist()


def test_memmap_is_shuffled_in_blocks_by_default(data, tmp_path):
    """A memory-mapped X gets the block-wise shuffle ("auto"), with blocks of
    about 64 MiB; the in-memory array gets it when asked explicitly."""
    X, y = data
    path = tmp_path / "X.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    size = _api.MEMMAP_BLOCK_BYTES // (8 * X.shape[1])
    options = dict(method="sgd", lr=0.01, epochs=2, seed=7)
    from_disk = gdcore.fit(mapped, y, **options)
    assert from_disk.copied == ()
    np.testing.assert_array_equal(from_disk.w, gdcore.fit(X, y, shuffle_block=size,
                                                          **options).w)
    small_blocks = gdcore.fit(mapped, y, shuffle_block=5, **options)
    np.testing.assert_array_equal(small_blocks.w, gdcore.fit(X, y, shuffle_block=5,
                                                             **options).w)
    full = gdcore.fit(mapped, y, shuffle_block=None, **options)
    np.testing.assert_array_equal(full.w, gdcore.fit(X, y, **options).w)


# a string is a shuffle_block ("auto"): another one is a bad value, like a bad choice
@pytest.mark.parametrize("bad,error", [(0, ValueError), (2.5, TypeError), ("big", ValueError),
                                       (True, TypeError), ([7], TypeError)])
def test_bad_shuffle_block(data, bad, error):
    with pytest.raises(error, match="shuffle_block"):
        gdcore.fit(*data, shuffle_block=bad)
