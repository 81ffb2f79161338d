"""gdcore on Dask arrays: train on data spread over a cluster (optional extra).

Install with ``pip install "gdcore[dask]"``; ``import gdcore`` never imports
Dask, this module does (``import gdcore.dask``).

``X`` is a ``dask.array.Array`` of shape (n_samples, n_features) (or
(n_samples,), one feature), chunked along the rows; ``y`` a Dask array (or an
in-memory array-like, then chunked like ``X``'s rows). Every chunk is handed to
gdcore's compiled kernels where it lives (on a ``distributed`` worker, when a
``distributed.Client`` is active, else in Dask's default local scheduler), and
only O(``n_features``) numbers travel per chunk.

:func:`fit` is :func:`gdcore.fit`'s training loop (the same options, defaults,
schedules, momentum, early stopping, callbacks, divergence policies, warm
starts in both directions) with a Dask trainer under it. Two ways of running
an epoch, one per kind of method:

``method="batch"`` (parallel)
    Every chunk computes its raw sums ``sum(r**2)``, ``sum(r)`` and
    ``X_chunk.T @ r`` in parallel with the compiled kernel; the client adds
    them **in chunk order** (a fixed order, so the result does not depend on
    which worker finished first) and takes the step with the compiled
    update rule, exactly as a full-batch epoch in memory does. The result
    equals :func:`gdcore.fit` with ``method="batch"`` on the same data in
    memory to about 1e-15 relative (the two only group the sum over rows
    differently; the tests hold it to 1e-12), and is the same bits on every
    run, cluster size and chunk placement for the same chunking.

``method="sgd"`` and ``"minibatch"`` (sequential)
    The chunks are streamed **one after the other, in order** through the
    compiled epoch kernel, each on the worker that holds it; only the
    training state travels from chunk to chunk. This is inherently sequential
    (each update needs the previous one): a cluster adds memory, not speed.
    Batches **restart at every chunk boundary**: the last batch of a chunk may
    be smaller and is averaged over its own size, and no batch spans two
    chunks. So with chunks whose sizes are multiples of ``batch_size``
    (always, for ``sgd``) and ``shuffle=False`` the parameters are the same
    bits as :func:`gdcore.fit` with ``shuffle=False`` in memory.
    ``shuffle=True`` keeps the chunk order and visits the rows of each chunk
    in a fresh random order every epoch: ``rng.permutation(rows)`` of
    ``default_rng(s)``, one ``s = rng.integers(2**63)`` drawn per chunk from
    the run's generator.

Not available on Dask (refused with an error naming the option):
``backend="reference"``, ``validation_fraction``, ``stop_on="validation"``,
``sample_weight``, a 2-D ``y``, ``copy=False`` and ``shuffle_block``.

Data are read once per epoch from wherever the Dask graph gets them: call
``X, y = dask.persist(X, y)`` first when they fit in the cluster's memory,
or every epoch recomputes (reloads) the chunks.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "gdcore.dask needs Dask (dask[array]); install it with "
        "pip install \"gdcore[dask]\" (which also brings distributed, for clusters)"
    ) from exc

from . import _api, _dispatch, _options, _validation
from ._options import Config
from ._results import FitResult
from ._state import Data, TrainState
from ._training import train

__all__ = ["fit", "predict", "value_and_grad"]

#: Options of gdcore.fit that gdcore.dask.fit does not take (other than at
#: their defaults), and why.
NOT_ON_DASK = {
    "backend": "the chunks run in the compiled kernels",
    "validation_fraction": "no held-out chunks yet",
    "sample_weight": "no sample weights on Dask yet",
    "copy": "each chunk is converted where it lives",
    "shuffle_block": "chunks are shuffled one by one",
    "checkpoint": "no checkpoints of Dask runs yet",
    "checkpoint_seconds": "no checkpoints of Dask runs yet",
    "standardize": "no standardizing pass over Dask chunks yet",
}


# ---------------------------------------------------------------------------
# The chunks
# ---------------------------------------------------------------------------

class _Chunks:
    """The non-empty row chunks of ``X`` and ``y``, in order, as Dask delayeds."""

    def __init__(self, X: da.Array, y: da.Array) -> None:
        x_parts = X.to_delayed().ravel()
        y_parts = y.to_delayed().ravel()
        self.parts = []     # (X chunk, y chunk, first row, rows)
        start = 0
        for x_part, y_part, rows in zip(x_parts, y_parts, X.chunks[0], strict=True):
            if rows > 0:    # a zero-row chunk holds nothing to learn from
                self.parts.append((x_part, y_part, start, int(rows)))
            start += rows
        self.n_samples = int(X.shape[0])
        self.n_features = int(X.shape[1])

    def sums(self, params: np.ndarray, n_threads: int) -> np.ndarray:
        """``[sum r**2, sum r, *(X.T @ r)]`` over all rows, chunks added in order."""
        tasks = [dask.delayed(_chunk_sums, pure=True)(x, y, params, n_threads)
                 for x, y, _, _ in self.parts]
        parts = dask.compute(*tasks)            # results come back in chunk order
        total = parts[0].copy()
        for part in parts[1:]:
            total += part
        return total

    def raise_if_nonfinite(self) -> None:
        """``ValueError`` naming the first non-finite value of ``X``, else of ``y``."""
        tasks = [dask.delayed(_first_nonfinite, pure=True)(x, y)
                 for x, y, _, _ in self.parts]
        found = dask.compute(*tasks)
        for name in ("X", "y"):
            for (_, _, start, _), hits in zip(self.parts, found, strict=True):
                if name in hits:
                    position, value = hits[name]
                    row = start + position[0]
                    where = row if name == "y" else (row, position[1])
                    raise ValueError(f"{name} must contain only finite values; got "
                                     f"{value} at index {where}")


# ---------------------------------------------------------------------------
# What runs on the workers, one chunk at a time
# ---------------------------------------------------------------------------

def _chunk_sums(X: np.ndarray, y: np.ndarray, params: np.ndarray,
                n_threads: int) -> np.ndarray:
    """``[sum r**2, sum r, *(X.T @ r)]`` of one chunk: the compiled kernel's raw
    sums (``full_sums``), so chunks add up without any rescaling. A non-finite
    value in the chunk makes them non-finite."""
    X, y = (np.asarray(a, dtype=np.float64, order="C") for a in (X, y))
    out = np.empty(X.shape[1] + 2)
    _dispatch.require().full_sums(X, y.reshape(-1, 1), None, params, out, n_threads)
    return out


def _first_nonfinite(X: np.ndarray, y: np.ndarray) -> dict:
    """``{name: (index, value)}`` of the first non-finite value of a chunk's X and y."""
    hits = {}
    for name, array in (("X", X), ("y", y)):
        bad = ~np.isfinite(array)
        if bad.any():
            position = tuple(int(i) for i in np.argwhere(bad)[0])
            hits[name] = (position, float(array[position]))
    return hits


def _stream_chunk(X: np.ndarray, y: np.ndarray, config: Config, seed: int | None,
                  carried: tuple, lr: float, first: int, stop: int) -> tuple:
    """Steps ``first .. stop - 1`` of one chunk's part of an epoch, continuing
    from ``carried = (state, global_step, steps, running, part, nonfinite, l1_total)``
    (``running`` the kernel's loss accumulator of the epoch, ``part`` the
    sum of this call's batch losses).

    Once a chunk stops at a non-finite loss, later chunks pass ``carried``
    on untouched.
    """
    state, step, steps_before, running, part_before, nonfinite, l1_total = carried
    if nonfinite or first >= stop:
        return carried
    X, y = (np.asarray(a, dtype=np.float64, order="C") for a in (X, y))
    state = state.copy()
    kernels = _dispatch.require()
    rule = kernels.Rule(config, config.batch_size, config.n_threads)
    order = (None if seed is None
             else np.random.default_rng(seed).permutation(X.shape[0]).astype(np.intp))
    steps, running, part, nonfinite, l1_total = kernels.run_epoch(
        X, y.reshape(-1, 1), order, None, state, rule, lr, step, first, stop, running,
        l1_total)
    return (state, step + steps, steps_before + steps, running, part_before + part, nonfinite,
            l1_total)


def _predict_chunk(X: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    return _api.predict(X, w, b)


# ---------------------------------------------------------------------------
# The trainer under gdcore.fit's training loop
# ---------------------------------------------------------------------------

class DaskTrainer:
    """A run's epochs over the chunks of Dask arrays (see the module docstring)."""

    def __init__(self, data: Data, config: Config) -> None:
        self._chunks = _Chunks(data.X, data.y)
        self._batch = config.batch_size >= self._chunks.n_samples
        self._shuffle = config.shuffle and not self._batch
        # What the workers need of the options (a callback stays on the client).
        self._config = dataclasses.replace(config, callback=None)
        self._kernels = _dispatch.require()
        self._rule = self._kernels.Rule(config, config.batch_size, config.n_threads)
        self._threads = int(config.n_threads or 1)
        # the first step of each chunk within an epoch, and the epoch's steps
        per_chunk = [1 if self._batch else -(-rows // config.batch_size)
                     for _, _, _, rows in self._chunks.parts]
        self._first_steps = np.concatenate([[0], np.cumsum(per_chunk)]).astype(int)
        self.steps_per_epoch = 1 if self._batch else int(self._first_steps[-1])

    def epoch_order(self, state: TrainState) -> np.ndarray | None:
        """One seed per chunk for its row permutation (None: rows in order)."""
        if not self._shuffle:
            return None
        assert state.rng is not None
        return np.array([state.rng.integers(2 ** 63) for _ in self._chunks.parts],
                        dtype=np.int64)

    def raise_if_bad_input(self) -> None:
        self._chunks.raise_if_nonfinite()

    def run(self, state: TrainState, order: np.ndarray | None, lr: float, first_step: int,
            stop_step: int, running: float) -> tuple[int, float, float, bool]:
        if self._batch:
            if first_step > 0 or stop_step < 1:
                return 0, running, 0.0, False
            sums = self._chunks.sums(state.params, self._threads)
            steps, running, part, nonfinite, state.l1_total = self._kernels.sums_step(
                state.buffers, self._rule, sums, self._chunks.n_samples, 1, lr,
                state.global_step, running, state.l1_total)
            return steps, running, part, nonfinite
        carried: Any = (state.buffers, state.global_step, 0, running, 0.0, False,
                        state.l1_total)
        for c, (x_part, y_part, _, _) in enumerate(self._chunks.parts):
            start = int(self._first_steps[c])
            first = max(first_step - start, 0)
            stop = min(stop_step, int(self._first_steps[c + 1])) - start
            if first >= stop:
                continue
            seed = None if order is None else int(order[c])
            carried = dask.delayed(_stream_chunk, pure=False)(
                x_part, y_part, self._config, seed, carried, lr, first, stop)
        new_state, _, steps, running, part, nonfinite, l1_total = dask.compute(carried)[0]
        state.buffers[...] = new_state
        state.l1_total = l1_total
        return steps, running, part, nonfinite

    def loss_total(self, running: float) -> float:
        return self._config.loss_factor * running   # the kernel sums losses over the factor

    def subset_loss(self, rows: np.ndarray, params: np.ndarray) -> float:
        raise AssertionError("gdcore.dask has no validation split")  # refused in fit


class DaskBackend:
    """Trainers over Dask arrays (the compiled kernels on every chunk)."""

    name = "dask"

    def trainer(self, data: Data, config: Config) -> DaskTrainer:
        return DaskTrainer(data, config)


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------

def value_and_grad(X: Any, y: Any, w: Any, b: float = 0.0, *, loss: str = "mse",
                   n_threads: int = 1) -> tuple[float, np.ndarray, float]:
    """Loss and gradient of the linear model over all rows of a Dask array.

    The same numbers as :func:`gdcore.value_and_grad` on the data in memory,
    to about 1e-15 relative: each chunk's raw sums come from the compiled
    kernel on its worker, and the client adds them in chunk order (the same
    bits on every run).

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features) or (n_samples,)
        Real-valued; chunks along the columns are merged first. Chunks that
        are not float64 C-contiguous are converted on their worker.
    y : dask.array.Array or array-like of shape (n_samples,)
        Targets; rechunked (or chunked) like ``X``'s rows.
    w : array-like of shape (n_features,)
        Weights; finite.
    b : float, default 0.0
        Intercept; finite.
    loss : {"mse", "half_mse"}, default "mse"
    n_threads : int, default 1
        Threads of the compiled pass inside each chunk's task (Dask already
        runs chunks in parallel). Results do not depend on it.

    Returns
    -------
    loss : float
        The loss at ``w`` and ``b``.
    grad_w : ndarray of shape (n_features,)
        Its gradient with respect to ``w``.
    grad_b : float
        Its derivative with respect to ``b``.

    Raises
    ------
    TypeError, ValueError
        As :func:`gdcore.value_and_grad`; also when ``X`` is not a Dask array
        or has unknown chunk sizes.
    """
    X, y = _validation.check_dask_X_y(X, y, da)
    w = _validation.check_weights(w, X.shape[1], "w")
    b = _validation.check_real(b, "b")
    loss_factor = _options.loss_factor(loss)
    n_threads = _validation.check_int(n_threads, "n_threads", minimum=1,
                                      maximum=_validation.MAX_THREADS)
    chunks = _Chunks(X, y)
    sums = chunks.sums(np.append(w, b), n_threads)
    n = chunks.n_samples
    scale = 2.0 * loss_factor / n
    value = loss_factor * sums[0] / n
    if not math.isfinite(value):
        chunks.raise_if_nonfinite()
    return float(value), scale * sums[2:], float(scale * sums[1])


def predict(X: Any, w: Any, b: float = 0.0) -> da.Array:
    """Predict ``X @ w + b`` as a lazy Dask array (one task per row chunk).

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features) or (n_samples,)
        Samples, chunked along the rows; 1-D means one feature.
    w : array-like of shape (n_features,)
        Weights.
    b : float, default 0.0
        Intercept.

    Returns
    -------
    dask.array.Array of shape (n_samples,), float64
        Computing it raises ``ValueError`` if a chunk of ``X`` holds a
        non-finite value (as :func:`gdcore.predict` does).
    """
    X = _validation.check_dask_X(X, da)
    w = _validation.check_weights(w, X.shape[1], "w")
    b = _validation.check_real(b, "b")
    return X.map_blocks(_predict_chunk, w, b, drop_axis=1, dtype=np.float64,
                        meta=np.empty((0,), dtype=np.float64))


def fit(X: Any, y: Any, **options: Any) -> FitResult:
    """Train ``y ~ X @ w + b`` by gradient descent on Dask arrays.

    :func:`gdcore.fit` on data spread over a cluster: the same keywords, with
    the same defaults and meanings, the same training loop and result (see the
    module documentation for how an epoch is distributed). A ``FitResult``
    (or its ``state``) from either function warm-starts the other.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features) or (n_samples,)
        Real-valued, with known chunk sizes; chunks along the columns are
        merged first. Never modified.
    y : dask.array.Array or array-like of shape (n_samples,)
        Targets; rechunked (or chunked) like ``X``'s rows. Never modified.
    **options
        The keywords of :func:`gdcore.fit`, except those in ``NOT_ON_DASK``
        (refused unless at their default). ``n_threads`` is the threads of
        the compiled kernel inside each chunk's task (default 1: Dask runs the
        chunks in parallel); results do not depend on it.

    Returns
    -------
    FitResult
        As :func:`gdcore.fit`, with ``backend="dask"``.

    Raises
    ------
    TypeError, ValueError
        Bad inputs or options, before any training (a non-finite value in
        ``X`` or ``y`` when it first makes a loss non-finite, naming its
        global index).
    DivergenceError
        As :func:`gdcore.fit`: the loss or the parameters stopped being
        finite; carries the last finite parameters, the epoch and the step
        within the epoch (counted over all chunks) and the history so far.
    """
    arguments: dict[str, Any] = {name: record.default
                                 for name, record in _options.ALL.items()}
    for name, value in options.items():
        if name not in arguments:
            raise TypeError(f"gdcore.dask.fit got an unexpected keyword argument {name!r}")
        if name in NOT_ON_DASK and not _is_default(value, arguments[name]):
            raise ValueError(f"{name} is not available in gdcore.dask.fit "
                             f"({NOT_ON_DASK[name]}); got {name}={value!r}")
    arguments.update(options)
    if arguments["lr"] == "auto":
        raise ValueError("lr='auto' is not available in gdcore.dask.fit (no curvature "
                         "estimate over Dask chunks yet); give lr a number")
    config = _options.from_arguments(arguments)
    if config.stop_on == "validation":
        raise ValueError("stop_on='validation' is not available in gdcore.dask.fit "
                         "(no held-out chunks yet)")
    X, y = _validation.check_dask_X_y(X, y, da)
    n_samples, n_features = (int(size) for size in X.shape)
    _dispatch.require()
    state = _api.start_state(config, arguments, n_features, None)
    state.schedule_state = state.schedule_state or config.schedule.initial_state(config.rate)
    config = dataclasses.replace(
        config, shuffle_block=None, n_threads=config.n_threads or 1,
        batch_size={"batch": n_samples, "sgd": 1}.get(config.method,
                                                      min(config.batch_size, n_samples)))
    return train(DaskBackend(), Data(X=X, y=y), config, state)


def _is_default(value: Any, default: Any) -> bool:
    return value is default or (type(value) is type(default) and value == default)
