"""The compiled shuffle (gdcore/shuffle.pyx) gives NumPy's orders and state."""

from __future__ import annotations

import numpy as np
import pytest

from gdcore import _orders

_shuffle = pytest.importorskip("gdcore._shuffle")

BIT_GENERATORS = [np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937,
                  np.random.Philox, np.random.SFC64]
# around the batch of 256 draws and the powers of two where the mask changes
SIZES = [0, 1, 2, 3, 4, 5, 7, 8, 9, 100, 255, 256, 257, 511, 512, 513, 1000, 4097,
         65535, 65536, 65537, 100_003]


def _numpy_rows(rng: np.random.Generator, orders: np.ndarray) -> np.ndarray:
    out = orders.copy()
    for row in out:
        rng.shuffle(row)
    return out


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_the_same_orders_and_state_as_numpy(n: int, seed: int) -> None:
    orders = np.tile(np.arange(n, dtype=np.intp), (3, 1))
    ours, theirs = np.random.default_rng(seed), np.random.default_rng(seed)
    expected = _numpy_rows(theirs, orders)
    _shuffle.shuffle_rows(ours.bit_generator, orders)
    np.testing.assert_array_equal(orders, expected)
    assert ours.bit_generator.state == theirs.bit_generator.state
    assert ours.integers(2**62) == theirs.integers(2**62)


@pytest.mark.parametrize("n", [65535, 65536, 65537, 300_007])
def test_two_threads_give_the_same_orders_and_state(n: int) -> None:
    # rows of at least PAIR_ROWS (65,536) values are shuffled by two threads
    # when asked: one draws, the other swaps behind it
    for seed in (0, 5):
        for bit_generator in (np.random.PCG64, np.random.MT19937):
            ours = np.random.Generator(bit_generator(seed))
            theirs = np.random.Generator(bit_generator(seed))
            orders = np.tile(np.arange(n, dtype=np.intp), (2, 1))
            expected = _numpy_rows(theirs, orders)
            _shuffle.shuffle_rows(ours.bit_generator, orders, 2)
            np.testing.assert_array_equal(orders, expected)
            np.testing.assert_array_equal(ours.integers(2**62, size=8),
                                          theirs.integers(2**62, size=8))


def test_a_fit_shuffles_the_same_on_one_thread_or_two() -> None:
    import gdcore

    X, y, _ = gdcore.make_regression(70_000, 3, seed=1)
    runs = [gdcore.fit(X, y, method="sgd", lr=0.001, epochs=2, seed=4, n_threads=threads)
            for threads in (1, 2)]
    np.testing.assert_array_equal(runs[0].w, runs[1].w)
    np.testing.assert_array_equal(runs[0].history, runs[1].history)


@pytest.mark.parametrize("bit_generator", BIT_GENERATORS)
def test_every_numpy_bit_generator(bit_generator: type) -> None:
    for n, seed in [(10, 3), (1000, 4), (70_000, 5)]:
        ours = np.random.Generator(bit_generator(seed))
        theirs = np.random.Generator(bit_generator(seed))
        orders = np.arange(2 * n, dtype=np.intp).reshape(2, n)
        expected = theirs.permuted(orders, axis=1)
        _shuffle.shuffle_rows(ours.bit_generator, orders)
        np.testing.assert_array_equal(orders, expected)
        assert ours.random() == theirs.random()


def test_a_half_used_32_bit_draw_is_continued() -> None:
    # PCG64 hands out a 64-bit draw as two 32-bit halves: a generator that
    # holds the second half must give it first, as NumPy does
    ours, theirs = np.random.default_rng(7), np.random.default_rng(7)
    for rng in (ours, theirs):
        rng.integers(0, 2**31, dtype=np.uint32)     # one half used
    orders = np.arange(999, dtype=np.intp).reshape(1, -1)
    expected = _numpy_rows(theirs, orders)
    _shuffle.shuffle_rows(ours.bit_generator, orders)
    np.testing.assert_array_equal(orders, expected)
    assert ours.bit_generator.state == theirs.bit_generator.state


def test_any_values_not_only_a_range() -> None:
    rng, check = np.random.default_rng(9), np.random.default_rng(9)
    values = np.random.default_rng(1).integers(-5, 5, size=(2, 333)).astype(np.intp)
    expected = _numpy_rows(check, values)
    _shuffle.shuffle_rows(rng.bit_generator, values)
    np.testing.assert_array_equal(values, expected)


def test_orders_shuffle_falls_back_to_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = _orders.shuffle(np.random.default_rng(2), np.tile(np.arange(50), (4, 1)))
    monkeypatch.setattr(_orders, "_shuffle", None)
    fallback = _orders.shuffle(np.random.default_rng(2), np.tile(np.arange(50), (4, 1)))
    np.testing.assert_array_equal(compiled, fallback)


class _Reversing(np.random.Generator):
    """A generator whose own shuffle reverses: it must be the one called."""

    def shuffle(self, x: np.ndarray, axis: int = 0) -> None:  # type: ignore[override]
        x[:] = x[::-1].copy()


def test_a_generator_subclass_shuffles_with_its_own_shuffle() -> None:
    rng = _Reversing(np.random.PCG64(5))
    orders = _orders.draw(rng, 3, 6)
    np.testing.assert_array_equal(orders, np.tile(np.arange(6)[::-1], (3, 1)))


@pytest.mark.parametrize("fast", [True, False])
def test_both_backends_use_a_subclass_s_shuffle(fast: bool) -> None:
    import gdcore

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    y = X @ rng.standard_normal(4)
    extra = {} if fast else {"callback": lambda info: None}
    w = [gdcore.fit(X, y, backend=backend, method="sgd", epochs=5, lr=0.01,
                    seed=_Reversing(np.random.PCG64(5)), **extra).w
         for backend in ("cython", "reference")]
    np.testing.assert_allclose(w[0], w[1], rtol=1e-12)


def test_bad_arguments_are_refused() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises((TypeError, ValueError)):
        _shuffle.shuffle_rows(rng.bit_generator, np.arange(10, dtype=np.float64).reshape(1, -1))
    with pytest.raises(AttributeError):
        _shuffle.shuffle_rows(object(), np.arange(10, dtype=np.intp).reshape(1, -1))
    with pytest.raises(TypeError):
        _shuffle.shuffle_rows(rng.bit_generator, None)
