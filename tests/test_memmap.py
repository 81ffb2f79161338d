"""fit and value_and_grad on memory-mapped data: used as is, never copied.

A float64 C-contiguous ``numpy.memmap`` (and ``numpy.load(..., mmap_mode="r")``)
must reach the compiled kernels as the very same memory: the tests spy on the
kernel module to see what it is handed, and measure the Python-side memory a
fit allocates (``tracemalloc`` sees NumPy's allocations, not the mapping).
"""

from __future__ import annotations

import hashlib
import tracemalloc

import numpy as np
import pytest

import gdcore
from gdcore import _dispatch

N, D = 20_000, 8


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """X and y written by make_regression_npy, and the same data in memory."""
    folder = tmp_path_factory.mktemp("memmap")
    path_X, path_y = folder / "X.npy", folder / "y.npy"
    gdcore.make_regression_npy(path_X, path_y, N, D, noise=0.5, bias=1.0, seed=7,
                               chunk_rows=3000)
    X, y, _ = gdcore.make_regression(N, D, noise=0.5, bias=1.0, seed=7)
    return path_X, path_y, X, y


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class KernelSpy:
    """Stands in for gdcore's kernel module and records the X each kernel gets."""

    def __init__(self, module):
        self._module = module
        self.seen = []

    def __getattr__(self, name):
        attr = getattr(self._module, name)
        if name in ("run_epoch", "full_sums", "subset_loss"):
            def spy(X, *args, **kwargs):
                self.seen.append((name, X))
                return attr(X, *args, **kwargs)
            return spy
        return attr


@pytest.fixture
def spy(monkeypatch):
    """Spies on the kernel modules gdcore reads from _dispatch at each call."""
    spy = KernelSpy(_dispatch.require())
    monkeypatch.setattr(_dispatch, "kernels", spy)
    short_rows = KernelSpy(_dispatch.short_row_kernels)   # per-sample epochs on short rows
    short_rows.seen = spy.seen
    monkeypatch.setattr(_dispatch, "short_row_kernels", short_rows)
    return spy


def _open(kind, path_X, path_y):
    if kind == "load":
        return np.load(path_X, mmap_mode="r"), np.load(path_y, mmap_mode="r")
    # numpy.memmap straight on the .npy files, past their headers
    X_head = np.load(path_X, mmap_mode="r")
    y_head = np.load(path_y, mmap_mode="r")
    X = np.memmap(path_X, dtype=np.float64, mode=kind, offset=X_head.offset,
                  shape=X_head.shape)
    y = np.memmap(path_y, dtype=np.float64, mode=kind, offset=y_head.offset,
                  shape=y_head.shape)
    return X, y


@pytest.mark.parametrize("kind", ["load", "r", "c", "r+"])
@pytest.mark.parametrize("method", ["batch", "sgd", "minibatch"])
def test_fit_uses_the_memmap_as_is_and_matches_memory(files, spy, kind, method):
    """The kernels get the mapped memory itself (no copy) and the result is the
    same bits as on the in-memory arrays; the files are not modified."""
    path_X, path_y, X_mem, y_mem = files
    before = _digest(path_X), _digest(path_y)
    X, y = _open(kind, path_X, path_y)
    options = dict(method=method, batch_size=64, lr=0.01, epochs=2, seed=3)
    result = gdcore.fit(X, y, **options)
    assert spy.seen, "no kernel was called"
    for name, X_kernel in spy.seen:
        assert np.shares_memory(X_kernel, X), f"{name} got a copy of X"
    expected = gdcore.fit(X_mem, y_mem, **options)
    np.testing.assert_array_equal(result.w, expected.w)
    assert result.b == expected.b
    np.testing.assert_array_equal(result.history, expected.history)
    del X, y
    assert (_digest(path_X), _digest(path_y)) == before


@pytest.mark.parametrize("kind", ["load", "r", "c"])
def test_value_and_grad_uses_the_memmap_as_is(files, spy, kind):
    path_X, path_y, X_mem, y_mem = files
    X, y = _open(kind, path_X, path_y)
    w = np.linspace(-1, 1, D)
    got = gdcore.value_and_grad(X, y, w, 0.5)
    assert [name for name, _ in spy.seen] == ["full_sums"]
    assert np.shares_memory(spy.seen[0][1], X)
    expected = gdcore.value_and_grad(X_mem, y_mem, w, 0.5)
    assert got[0] == expected[0] and got[2] == expected[2]
    np.testing.assert_array_equal(got[1], expected[1])


def test_predict_and_estimator_on_memmaps(files):
    path_X, path_y, X_mem, y_mem = files
    X, y = _open("load", path_X, path_y)
    w = np.arange(D, dtype=float)
    np.testing.assert_array_equal(gdcore.predict(X, w, 1.0), gdcore.predict(X_mem, w, 1.0))
    model = gdcore.LinearRegressor(method="sgd", lr=0.001, epochs=1, seed=0).fit(X, y)
    reference = gdcore.LinearRegressor(method="sgd", lr=0.001, epochs=1,
                                       seed=0).fit(X_mem, y_mem)
    np.testing.assert_array_equal(model.coef_, reference.coef_)
    assert model.score(X, y) == reference.score(X_mem, y_mem)


def test_fit_on_a_memmap_allocates_only_o_n_plus_d(files):
    """Python-side allocations of a shuffled fit on a memmapped X stay at the
    O(n) index arrays and O(d) vectors: far below the size of X."""
    path_X, path_y, _, _ = files
    X, y = _open("load", path_X, path_y)
    gdcore.fit(X, y, method="minibatch", epochs=1, seed=0)     # warm up imports
    tracemalloc.start()
    try:
        gdcore.fit(X, y, method="minibatch", batch_size=32, epochs=2, seed=0)
        gdcore.fit(X, y, method="batch", lr=0.1, epochs=2)
        gdcore.value_and_grad(X, y, np.zeros(D))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # X is 1.28 MB: a copy of it would show; two index arrays of n are 0.32 MB.
    assert peak < 0.6 * X.nbytes, f"peak {peak} bytes for X of {X.nbytes} bytes"


def test_memmapped_1d_x_and_memmapped_y(tmp_path):
    x = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", shape=(500,))
    x[:] = np.linspace(-1, 1, 500)
    y = np.lib.format.open_memmap(tmp_path / "y.npy", mode="w+", shape=(500,))
    y[:] = 3 * x - 2
    x.flush(), y.flush()
    x_r = np.load(tmp_path / "x.npy", mmap_mode="r")
    y_r = np.load(tmp_path / "y.npy", mmap_mode="r")
    result = gdcore.fit(x_r, y_r, method="batch", lr=0.5, epochs=300)
    np.testing.assert_allclose([result.w[0], result.b], [3.0, -2.0], atol=1e-6)
    expected = gdcore.fit(np.array(x_r), np.array(y_r), method="batch", lr=0.5, epochs=300)
    np.testing.assert_array_equal(result.w, expected.w)


@pytest.mark.parametrize("order,dtype", [("F", np.float64), ("C", np.float32)])
def test_memmaps_that_need_converting_work_and_stay_untouched(tmp_path, order, dtype):
    """A Fortran-order or float32 memmap is converted once (documented), gives
    the result of the converted in-memory array, and its file is not modified."""
    X_mem, y_mem, _ = gdcore.make_regression(300, 4, noise=0.1, seed=1)
    path = tmp_path / "X.npy"
    X_map = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=X_mem.shape,
                                      fortran_order=(order == "F"))
    X_map[...] = X_mem
    X_map.flush()
    del X_map
    before = _digest(path)
    X = np.load(path, mmap_mode="r")
    result = gdcore.fit(X, y_mem, method="minibatch", epochs=2, seed=0)
    expected = gdcore.fit(np.ascontiguousarray(X, dtype=np.float64), y_mem,
                          method="minibatch", epochs=2, seed=0)
    np.testing.assert_array_equal(result.w, expected.w)
    del X
    assert _digest(path) == before


def test_memmap_at_an_unaligned_offset(tmp_path):
    """A float64 memmap whose data start at an odd byte offset (not aligned to
    8 bytes) is still read correctly."""
    X_mem, y_mem, _ = gdcore.make_regression(200, 3, noise=0.1, seed=2)
    path = tmp_path / "raw.bin"
    path.write_bytes(b"\0" * 3 + X_mem.tobytes())
    X = np.memmap(path, dtype=np.float64, mode="r", offset=3, shape=X_mem.shape)
    assert not X.flags.aligned
    w = np.array([0.5, -1.0, 2.0])
    got = gdcore.value_and_grad(X, y_mem, w, 0.1)
    expected = gdcore.value_and_grad(X_mem, y_mem, w, 0.1)
    assert got[0] == expected[0]
    np.testing.assert_array_equal(got[1], expected[1])
    result = gdcore.fit(X, y_mem, method="sgd", lr=0.01, epochs=2, seed=0)
    reference = gdcore.fit(X_mem, y_mem, method="sgd", lr=0.01, epochs=2, seed=0)
    np.testing.assert_array_equal(result.w, reference.w)


def test_nonfinite_value_in_a_memmap_is_reported(tmp_path):
    X_mem, y_mem, _ = gdcore.make_regression(100, 2, seed=3)
    X_mem[40, 1] = np.nan
    np.save(tmp_path / "X.npy", X_mem)
    X = np.load(tmp_path / "X.npy", mmap_mode="r")
    with pytest.raises(ValueError, match=r"X must contain only finite values.*\(40, 1\)"):
        gdcore.fit(X, y_mem, method="batch", lr=0.1, epochs=1)
    with pytest.raises(ValueError, match=r"\bX\b"):
        gdcore.value_and_grad(X, y_mem, np.zeros(2))
