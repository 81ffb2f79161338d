"""Sample orders of whole epochs: drawn in blocks, and ahead on a second thread.

A shuffled run visits each epoch's rows in the order ``rng.shuffle`` gives
``0..n-1`` (the contract both backends keep). When whole epochs run in one
compiled call, their orders are drawn before it, as one array per block of
epochs (:func:`draw`), by :func:`shuffle`: NumPy's shuffle done in C
(gdcore/shuffle.pyx) when the compiled modules are built. On small data the
draw still costs a good part of the epochs themselves (3 to 6 ns a row
against about 7 ns a row for per-sample SGD at d = 1), so :class:`Ahead`
draws the next blocks on a second thread while the compiled call runs the
current one: the shuffle releases the GIL, and so do the kernels.

The thread draws from its own copy of the run's generator, never from the
generator itself: the same calls in the same order give the same orders,
and each block comes with the generator states before and after its draw
(:meth:`Ahead.next`), from which the consumer sets the run's generator to
the state its epochs used (:func:`rewind`), whatever the thread has drawn
beyond them. The
thread is started without a ``threading.Thread`` object (whose start waits,
and whose clean-up runs a callback: a Ctrl-C arriving in either was lost or
left the thread behind) and ends by itself once the consumer is done with
it or gone: nothing waits for it.
"""

from __future__ import annotations

import _thread
import contextlib
import copy
import importlib
import queue
import weakref
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

from . import _dispatch

_shuffle: ModuleType | None
try:
    _shuffle = importlib.import_module("gdcore._shuffle")
except ImportError:                     # not built: NumPy's shuffle
    _shuffle = None

#: seconds the thread waits to hand over a block before it looks again
#: whether the consumer still wants it
HANDOVER_SECONDS = 0.05


def fill_range(buffer: np.ndarray) -> None:
    """``buffer[:] = 0..n-1`` (in the compiled kernel when built: no temporary)."""
    if _dispatch.kernels is not None:
        _dispatch.kernels.fill_range(buffer)
    else:
        buffer[:] = np.arange(buffer.shape[0])


def shuffle(rng: np.random.Generator, orders: np.ndarray, n_threads: int = 1) -> np.ndarray:
    """Each row of ``orders`` (C-contiguous ``intp``, shape (epochs, n))
    shuffled in place, one row after the other, by ``rng.shuffle`` of each
    in turn: for a plain ``Generator``, by the compiled ``gdcore._shuffle``
    when it was built (NumPy's algorithm and draws, about twice as fast,
    long rows on two threads when ``n_threads`` allows: gdcore/shuffle.pyx;
    tests/test_shuffle.py checks the equality); a subclass's own ``shuffle``
    is called row by row."""
    if type(rng) is np.random.Generator and _shuffle is not None:
        _shuffle.shuffle_rows(rng.bit_generator, orders, n_threads)
    else:
        for row in orders:
            rng.shuffle(row)
    return orders


def draw(rng: np.random.Generator, epochs: int, n: int,
         out: np.ndarray | None = None, n_threads: int = 1) -> np.ndarray:
    """``epochs`` sample orders (into ``out``, of shape (epochs, n), when
    given), each ``rng.shuffle`` of ``0..n-1`` (:func:`shuffle`, with
    ``n_threads``)."""
    orders = np.empty((epochs, n), dtype=np.intp) if out is None else out
    if epochs == 1:
        fill_range(orders[0])                   # no temporary of size n
    else:
        orders[:] = np.arange(n, dtype=np.intp)
    return shuffle(rng, orders, n_threads)


def rewind(rng: np.random.Generator, start: Any, epochs: int, n: int) -> None:
    """``rng`` as if only ``epochs`` orders of ``n`` rows had been drawn
    since its state was ``start``."""
    rng.bit_generator.state = start
    if epochs:
        draw(rng, epochs, n)


def block_sizes(epochs: int, per_block: int) -> Iterator[int]:
    """Epochs of each block: ``per_block`` each, the rest last (computed as
    they are taken, so a huge ``epochs`` costs nothing up front)."""
    for start in range(0, epochs, per_block):
        yield min(per_block, epochs - start)


class Ahead:
    """The orders of ``epochs`` epochs of ``n`` rows, in blocks of
    ``per_block`` epochs drawn one after the other on a thread of their own,
    at most two blocks ahead of the consumer.

    Parameters
    ----------
    rng : numpy.random.Generator
        The run's generator; the thread draws from a copy of it.
    n : int
        Rows per epoch.
    epochs, per_block : int
        Epochs in all, and per block.

    Raises
    ------
    RuntimeError
        When the generator cannot be copied or no thread can be started (the
        caller then draws the orders itself).
    """

    def __init__(self, rng: np.random.Generator, n: int, epochs: int,
                 per_block: int) -> None:
        self._start = rng.bit_generator.state
        self._blocks: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._done = False
        try:
            own = copy.deepcopy(rng)
        except Exception as error:      # a generator that cannot be copied
            raise RuntimeError(f"cannot draw ahead from a copy of {rng!r}") from error
        _thread.start_new_thread(
            _draw_blocks, (weakref.ref(self), self._blocks, own, n, epochs, per_block))

    def wanted(self) -> bool:
        """Whether the consumer still takes blocks (False once closed)."""
        return not self._done

    def next(self) -> tuple[Any, np.ndarray, Any]:
        """The next block: the generator's state before its draw, its
        ``(epochs, n)`` orders, and the state after. Raises what the drawing
        thread raised."""
        item = self._blocks.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """No more blocks: the thread ends after the draw under way. Never waits."""
        self._done = True
        with contextlib.suppress(queue.Empty):      # a hand-over waiting for room ends
            self._blocks.get_nowait()

    @property
    def start(self) -> Any:
        """The generator's state before the first block."""
        return self._start


def _draw_blocks(owner: weakref.ref[Ahead], blocks: queue.Queue[Any],
                 rng: np.random.Generator, n: int, epochs: int, per_block: int) -> None:
    """The drawing thread: each block as ``(state before, orders, state
    after)`` into ``blocks`` while its owner exists and wants more; an
    exception instead, if one is raised."""
    try:
        for size in block_sizes(epochs, per_block):
            if not _wanted(owner):
                return
            before = rng.bit_generator.state
            orders = draw(rng, size, n)
            if not _hand_over(owner, blocks, (before, orders, rng.bit_generator.state)):
                return
    except BaseException as error:      # handed to the consumer, raised there
        _hand_over(owner, blocks, error)


def _wanted(owner: weakref.ref[Ahead]) -> bool:
    consumer = owner()
    return consumer is not None and consumer.wanted()


def _hand_over(owner: weakref.ref[Ahead], blocks: queue.Queue[Any], item: Any) -> bool:
    """Put ``item`` into ``blocks`` once there is room; False (and not put)
    when the owner is gone or wants no more first."""
    while _wanted(owner):
        try:
            blocks.put(item, timeout=HANDOVER_SECONDS)
            return True
        except queue.Full:
            continue
    return False
