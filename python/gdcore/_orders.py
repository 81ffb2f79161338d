"""Sample orders of whole epochs: drawn in blocks, and ahead on a second thread.

A shuffled run visits each epoch's rows in the order ``rng.shuffle`` gives
``0..n-1`` (the contract both backends keep). When whole epochs run in one
compiled call, their orders are drawn before it, as one array per block of
epochs (:func:`draw`). On small data the draw costs about as much as the
epochs themselves (NumPy's shuffle takes 7 to 10 ns a row, an epoch of
per-sample SGD at d = 10 about 12 ns a row), so :class:`Ahead` draws the
next block on a second thread while the compiled call runs the current one:
NumPy releases the GIL while it shuffles, and the kernels while they train.

The draws are the same calls in the same order as without the thread, so the
orders and the generator's final state are the same; a consumer that stops
within a block puts the generator back to where that block's draw started
and draws again only the epochs it ran (:meth:`Ahead.rewind`).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _dispatch


def fill_range(buffer: np.ndarray) -> None:
    """``buffer[:] = 0..n-1`` (in the compiled kernel when built: no temporary)."""
    if _dispatch.kernels is not None:
        _dispatch.kernels.fill_range(buffer)
    else:
        buffer[:] = np.arange(buffer.shape[0])


def draw(rng: np.random.Generator, epochs: int, n: int,
         out: np.ndarray | None = None) -> np.ndarray:
    """``epochs`` sample orders (into ``out``, of shape (epochs, n), when
    given), each ``rng.shuffle`` of ``0..n-1``: ``Generator.permuted`` along
    the rows is exactly those shuffles, one after the other
    (tests/test_fast_epochs.py checks it)."""
    orders = np.empty((epochs, n), dtype=np.intp) if out is None else out
    if epochs == 1:
        fill_range(orders[0])                   # no temporary of size n
    else:
        orders[:] = np.arange(n, dtype=np.intp)
    return rng.permuted(orders, axis=1, out=orders)


class Ahead:
    """Blocks of sample orders drawn one after the other on a thread of
    their own, at most two blocks ahead of the consumer.

    Parameters
    ----------
    rng : numpy.random.Generator
        The run's generator. Only this object's thread draws from it until
        :meth:`close` returns.
    n : int
        Rows per epoch.
    sizes : sequence of int
        Epochs of each block, in the order they are taken.
    """

    def __init__(self, rng: np.random.Generator, n: int, sizes: Sequence[int]) -> None:
        self._rng = rng
        self._n = n
        self._sizes = list(sizes)
        # one block waiting here, one being drawn, one in use: bounded memory
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._draw_all, name="gdcore-orders",
                                        daemon=True)
        self._thread.start()

    def _draw_all(self) -> None:
        try:
            for size in self._sizes:
                if self._stop.is_set():
                    return
                start = self._rng.bit_generator.state
                self._queue.put((start, draw(self._rng, size, self._n)))
        except BaseException as error:      # handed to the consumer, raised there
            self._queue.put(error)

    def next(self) -> tuple[dict, np.ndarray]:
        """The next block: the generator's state before its draw, and its
        ``(epochs, n)`` orders. Raises what the drawing thread raised."""
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop drawing and wait for the thread (a draw under way finishes)."""
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):    # free a put waiting for room
                self._queue.get(timeout=0.01)
        self._thread.join()

    def rewind(self, start: dict, epochs: int) -> None:
        """After :meth:`close`: the generator as if only ``epochs`` epochs of
        the block whose draw began at ``start`` had been drawn."""
        self._rng.bit_generator.state = start
        if epochs:
            draw(self._rng, epochs, self._n)
