"""The trainers of :mod:`gdcore.dask`: an epoch over the chunks of Dask arrays.

Three ways of running the steps of an epoch under the shared training loop
(:mod:`gdcore._training`, through the :class:`~gdcore._engines.Trainer` seam):

:class:`BatchTrainer` (``method="batch"``)
    One step per epoch: every chunk's raw sums in parallel, reduced on the
    workers in a fixed tree, one compiled update on the client.
:class:`SequentialTrainer` (``strategy="sequential"``, sgd and minibatch)
    The chunks streamed one after the other through the compiled epoch
    kernel, each on its worker; only the state travels.
:class:`LocalTrainer` (``strategy="local"``, sgd and minibatch)
    Local SGD: every chunk is a replica that runs the compiled epoch kernel
    over its own rows, all in parallel from the same state; every
    ``sync_every`` rows (or once per epoch) the parameters and the
    optimizer's buffers are averaged, weighted by the rows each replica
    visited, in chunk order.

Imported by :mod:`gdcore.dask` only (it needs Dask).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import dask
import numpy as np

from . import _dispatch
from ._dask_chunks import (
    Chunks,
    Opaque,
    run_chunk,
    run_chunk_task,
    run_group_task,
)
from ._options import Config
from ._state import GRAD_SUM, Data, TrainState

STRATEGIES = ("sequential", "local")


class DataLostError(RuntimeError):  # numpydoc ignore=PR01
    """Chunks of the data were lost with a worker and cannot be recomputed.

    Raised by :func:`gdcore.dask.fit` when a worker dies holding data that
    exist nowhere else (arrays scattered into its memory rather than built by
    a graph from a source). Nothing of the run is lost: the error carries
    the parameters and the training state as of the last completed step
    (and a ``checkpoint`` file keeps its last save).

    Attributes
    ----------
    w : ndarray
        The last parameters (finite).
    b : float or ndarray
        The last intercept.
    epoch : int
        Epochs completed.
    state : TrainState
        The training state to continue from (``warm_start=error.state``),
        once the data are available again.
    """

    def __init__(self, message: str, *, w: Any, b: Any, epoch: int,
                 state: TrainState | None) -> None:
        super().__init__(message)
        self.w, self.b, self.epoch, self.state = w, b, epoch, state

    def __reduce__(self):
        return (_rebuild_data_lost, (type(self), self.args[0], self.w, self.b, self.epoch,
                                     self.state), self.__dict__)


def _rebuild_data_lost(kind, message, w, b, epoch, state):
    return kind(message, w=w, b=b, epoch=epoch, state=state)


def _lost_data_errors() -> tuple[type[BaseException], ...]:
    """The exceptions by which ``distributed`` reports data lost with a worker."""
    import concurrent.futures
    kinds: list[type[BaseException]] = [concurrent.futures.CancelledError]
    try:
        from distributed import KilledWorker
        from distributed.client import FutureCancelledError
    except ImportError:     # pragma: no cover - distributed is optional
        return tuple(kinds)
    return (*kinds, KilledWorker, FutureCancelledError)


class _Trainer:
    """What the three trainers share: the chunks, the order, the checks."""

    def __init__(self, data: Data, config: Config, weights: Any) -> None:
        self.chunks = Chunks(data.X, data.y, weights, data.val_rows)
        self.data = data
        self.config = dataclasses.replace(config, callback=None)   # what workers need
        self.kernels = _dispatch.require()
        self.threads = int(config.n_threads or 1)
        self.shuffle = config.shuffle and config.batch_size < self.chunks.n_train
        self.steps_per_epoch = 1

    def epoch_order(self, state: TrainState) -> np.ndarray | None:
        """One seed per chunk for its row permutation (None: rows in order)."""
        if not self.shuffle:
            return None
        assert state.rng is not None
        return np.array([state.rng.integers(2 ** 63) for _ in self.chunks.parts],
                        dtype=np.int64)

    def raise_if_bad_input(self) -> None:
        self.chunks.raise_if_nonfinite()

    def loss_total(self, running: float) -> float:
        return self.config.loss_factor * running   # the kernel sums losses over the factor

    def subset_loss(self, rows: np.ndarray, params: np.ndarray) -> float:
        return self.chunks.held_out_loss(params, self.config.loss_factor)

    def run(self, state: TrainState, order: np.ndarray | None, lr: float, first_step: int,
            stop_step: int, running: float) -> tuple[int, float, float, bool]:
        try:
            return self._run(state, order, lr, first_step, stop_step, running)
        except _lost_data_errors() as exc:
            raise DataLostError(
                f"chunks of X or y were lost with a worker and cannot be recomputed "
                f"({type(exc).__name__}: {exc}); they existed only in that worker's "
                f"memory (scattered, not built from a source). Make them recoverable: "
                f"build the arrays from files or a graph (da.from_zarr, da.from_array, "
                f"...) and persist them, or pass checkpoint= to keep the run; the "
                f"error's w, b and state hold the run as of its last completed step",
                **self.data.split(state.params), epoch=state.epoch,
                state=dataclasses.replace(state, buffers=state.buffers.copy())) from exc

    def _run(self, state: TrainState, order: np.ndarray | None, lr: float, first_step: int,
             stop_step: int, running: float) -> tuple[int, float, float, bool]:
        raise NotImplementedError


class BatchTrainer(_Trainer):
    """Full-batch descent: the chunks' sums in parallel, one update per epoch."""

    def _run(self, state: TrainState, order: np.ndarray | None, lr: float, first_step: int,
             stop_step: int, running: float) -> tuple[int, float, float, bool]:
        if first_step > 0 or stop_step < 1:
            return 0, running, 0.0, False
        sums = self.chunks.sums(state.params, self.threads)
        k = 1 if self.data.outputs is None else self.data.outputs
        rule = self.kernels.Rule(self.config, self.config.batch_size, self.threads)
        steps, running, part, nonfinite, state.l1_total = self.kernels.sums_step(
            state.buffers, rule, sums, self.chunks.n_train, k, lr, state.global_step,
            running, state.l1_total)
        return steps, running, part, nonfinite


class _PerChunk(_Trainer):
    """sgd and minibatch: each chunk's rows in batches that restart at its start."""

    def __init__(self, data: Data, config: Config, weights: Any) -> None:
        super().__init__(data, config, weights)
        size = config.batch_size
        self.chunk_steps = [-(-part.n_train // size) for part in self.chunks.parts]

    def _seed(self, order: np.ndarray | None, c: int) -> int | None:
        return None if order is None else int(order[c])


class SequentialTrainer(_PerChunk):
    """The chunks streamed in order: exactly one sequential epoch."""

    def __init__(self, data: Data, config: Config, weights: Any) -> None:
        super().__init__(data, config, weights)
        self.first_steps = np.concatenate([[0], np.cumsum(self.chunk_steps)]).astype(int)
        self.steps_per_epoch = int(self.first_steps[-1])

    def _run(self, state: TrainState, order: np.ndarray | None, lr: float, first_step: int,
             stop_step: int, running: float) -> tuple[int, float, float, bool]:
        carried: Any = (state.buffers, state.global_step, 0, running, 0.0, False,
                        state.l1_total)
        for c, part in enumerate(self.chunks.parts):
            start = int(self.first_steps[c])
            first = max(first_step - start, 0)
            stop = min(stop_step, int(self.first_steps[c + 1])) - start
            if first >= stop:
                continue
            carried = dask.delayed(_stream_chunk, pure=False)(
                part.X, part.y, part.weights, carried,
                Opaque(part.train, self.config, self._seed(order, c), lr, first, stop))
        buffers, _, steps, running, part_sum, nonfinite, l1_total = dask.compute(carried)[0]
        state.buffers[...] = buffers
        state.l1_total = l1_total
        return steps, running, part_sum, nonfinite


def _stream_chunk(X: Any, y: Any, weights: Any, carried: tuple, box: Opaque) -> tuple:
    """Steps ``first .. stop - 1`` of one chunk's part of an epoch (``box``:
    ``train, config, seed, lr, first, stop``), continuing from ``carried =
    (buffers, global_step, steps, running, part, nonfinite, l1_total)``. Once
    a chunk stops at a non-finite loss, later chunks pass ``carried`` on
    untouched."""
    train, config, seed, lr, first, stop = box.values
    buffers, step, steps_before, running, part_before, nonfinite, l1_total = carried
    if nonfinite:
        return carried
    buffers, steps, running, part, nonfinite, l1_total = run_chunk(
        X, y, weights, train, config, seed, buffers, l1_total, lr, step, first, stop, running)
    return (buffers, step + steps, steps_before + steps, running, part_before + part,
            nonfinite, l1_total)


class LocalTrainer(_PerChunk):
    """Local SGD: the chunks are replicas, averaged every ``sync_every`` rows.

    A step of the training loop is one step of every replica at once (the
    replicas' steps in parallel): an epoch has as many steps as the largest
    chunk has batches, and ``global_step`` (schedules, averaging) counts
    those. The epoch's loss is the mean of all replicas' batch losses and its
    gradient norm that of the mean of all their step gradients.
    """

    def __init__(self, data: Data, config: Config, weights: Any,
                 sync_every: int | None) -> None:
        super().__init__(data, config, weights)
        self.steps_per_epoch = max(self.chunk_steps)
        self.batch_size = config.batch_size
        #: parallel steps between averages
        self.round_steps = (self.steps_per_epoch if sync_every is None
                            else -(-sync_every // config.batch_size))
        #: all replicas' batches per epoch over its parallel steps: losses and
        #: gradients summed over all replicas are scaled by it (means per batch)
        self.ratio = self.steps_per_epoch / sum(self.chunk_steps)

    def _rows(self, c: int, first: int, stop: int) -> int:
        n = self.chunks.parts[c].n_train
        return min(stop * self.batch_size, n) - first * self.batch_size

    def _run(self, state: TrainState, order: np.ndarray | None, lr: float, first_step: int,
             stop_step: int, running: float) -> tuple[int, float, float, bool]:
        at, part_sum = first_step, 0.0
        while at < stop_step:
            end = min(stop_step, (at // self.round_steps + 1) * self.round_steps)
            global_step = state.global_step + (at - first_step)
            jobs: dict[int, tuple] = {}
            for c, part in enumerate(self.chunks.parts):
                first, stop = min(at, self.chunk_steps[c]), min(end, self.chunk_steps[c])
                if first < stop:
                    jobs[c] = (part.train, self.config, self._seed(order, c), state.buffers,
                               state.l1_total, lr, global_step, first, stop, 0.0)
            outcomes = self._round(jobs)
            rows = [self._rows(c, job[7], job[8]) for c, job in jobs.items()]
            if any(outcome[4] for outcome in outcomes):    # a replica met a non-finite loss
                return at - first_step, running, part_sum, True
            merged, state.l1_total, run_sum, round_part = average(
                state.buffers, outcomes, rows, self.ratio)
            state.buffers[...] = merged
            running += self.ratio * run_sum
            part_sum += self.ratio * round_part
            at = end
        return stop_step - first_step, running, part_sum, False


    def _round(self, jobs: dict[int, tuple]) -> list[tuple]:
        """Run each chunk's job (the arguments of ``run_chunk`` after the
        arrays); the outcomes in chunk order. One task per chunk, or per
        group of chunks a worker thread holds (the same outcomes)."""
        parts = self.chunks.parts
        if self.chunks.groups is None:
            tasks = [dask.delayed(run_chunk_task, pure=False)(
                         parts[c].X, parts[c].y, parts[c].weights, Opaque(*job))
                     for c, job in jobs.items()]
            return list(dask.compute(*tasks))
        groups = [[c for c in group if c in jobs] for group in self.chunks.groups]
        groups = [group for group in groups if group]
        tasks = [dask.delayed(run_group_task, pure=False)(
                     [parts[c].X for c in group], [parts[c].y for c in group],
                     [parts[c].weights for c in group], Opaque(*[jobs[c] for c in group]))
                 for group in groups]
        done = dict(zip([c for group in groups for c in group],
                        [o for outcome in dask.compute(*tasks) for o in outcome], strict=True))
        return [done[c] for c in jobs]


def average(start: np.ndarray, outcomes: Any, rows: list[int], ratio: float
            ) -> tuple[np.ndarray, float, float, float]:
    """The replicas' buffers averaged, weighted by the rows each visited, in
    order; the gradient sums added up instead (each replica's own gradients
    since ``start``, times ``ratio``). Returns ``(buffers, l1_total, running,
    part)``, the last two summed over the replicas."""
    total = float(sum(rows))
    merged = np.zeros_like(start)
    grads = np.zeros_like(start[GRAD_SUM])
    l1_total = running = part = 0.0
    for (buffers, _, run, batch_losses, _, l1), n in zip(outcomes, rows, strict=True):
        merged += (n / total) * buffers
        grads += buffers[GRAD_SUM] - start[GRAD_SUM]
        l1_total += (n / total) * l1
        running += run
        part += batch_losses
    merged[GRAD_SUM] = start[GRAD_SUM] + ratio * grads
    return merged, l1_total, running, part
