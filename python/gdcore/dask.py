"""gdcore on Dask arrays: train on data spread over a cluster (optional extra).

Install with ``pip install "gdcore[dask]"``; ``import gdcore`` never imports
Dask, this module does (``import gdcore.dask``).

``X`` is a ``dask.array.Array`` (or a Dask DataFrame) of shape (n_samples,
n_features) (or (n_samples,), one feature), chunked along the rows; ``y`` a
Dask array or Series (or an in-memory array-like, then chunked like ``X``'s
rows), 1-D or (n_samples, k) for k outputs. Arrays with unknown chunk sizes
are measured first (``compute_chunk_sizes``, one pass over them). Every chunk
is handed to gdcore's compiled kernels where it lives (on a ``distributed``
worker, when a ``distributed.Client`` is active, else in Dask's default local
scheduler), and only O(parameters) numbers travel per chunk.

:func:`fit` is :func:`gdcore.fit`'s training loop (the same options, defaults,
schedules, optimizers, penalties, sample weights, validation split, early
stopping, callbacks, progress, divergence policies, checkpoints, warm starts
in both directions) with a Dask trainer under it (``gdcore._dask_trainers``).
How an epoch is distributed:

``method="batch"`` (parallel)
    Every chunk computes its raw sums ``sum(r**2)``, ``sum(r)`` and
    ``X_chunk.T @ r`` in parallel with the compiled kernel, and the sums are
    added in a fixed tree (groups of 8 consecutive chunks, each added in
    chunk order, level by level): on persisted data one task per worker
    thread runs the chunks it holds and the client adds their sums in that
    tree; otherwise a task per chunk, and the tree's levels run as tasks on
    the workers. One round trip per epoch; the client takes the step with
    the compiled update rule, exactly as a full-batch epoch in memory does. The result equals
    :func:`gdcore.fit` with ``method="batch"`` on the same data in memory to
    about 1e-15 relative (the two only group the sum over rows differently;
    the tests hold it to 1e-12), and is the same bits on every run, cluster
    size and chunk placement for the same chunking.

``method="sgd"`` and ``"minibatch"``, ``strategy="sequential"`` (the default)
    The chunks are streamed **one after the other, in order** through the
    compiled epoch kernel, each on the worker that holds it; only the
    training state travels from chunk to chunk. Exact, and inherently
    sequential: a cluster adds memory, not speed. Batches **restart at every
    chunk boundary**: the last batch of a chunk may be smaller and is
    averaged over its own size, and no batch spans two chunks. So with
    chunks whose sizes are multiples of ``batch_size`` (always, for ``sgd``)
    and ``shuffle=False`` the parameters are the same bits as
    :func:`gdcore.fit` with ``shuffle=False`` in memory. ``shuffle=True``
    keeps the chunk order and visits the (training) rows of each chunk in a
    fresh random order every epoch: ``rng.permutation(rows)`` of
    ``default_rng(s)``, one ``s = rng.integers(2**63)`` drawn per chunk from
    the run's generator.

``method="sgd"`` and ``"minibatch"``, ``strategy="local"`` (parallel)
    Local SGD (parameter averaging): every chunk is a replica that runs the
    compiled epoch kernel over its own rows (batches and shuffling as in the
    sequential strategy), all chunks in parallel from the same state; every
    ``sync_every`` rows of each replica (default: once per epoch) the
    parameters and the optimizer's buffers (momentum, Adam's moments, the
    running average of averaged SGD, the cumulative L1 penalty) are
    replaced by their average over the replicas, weighted by the rows each
    visited since the last average, added in chunk order on the client.
    The chunks are the replicas: the number of chunks (not of workers) sets
    how many models are averaged, so the same chunking gives the same bits
    on any cluster. One step of the training loop is one step of every
    replica: an epoch has as many steps as the largest chunk has batches
    (``global_step``, schedules and ``average`` count those); the epoch's
    loss is the mean of all replicas' batch losses, and its gradient norm
    that of the mean of their step gradients. A ``callback_every`` or a
    ``checkpoint`` also averages at its slice boundaries (a callback sees one
    set of parameters). Averaging is not the same as one sequential pass:
    see ``docs/scale.md`` for its measured statistical efficiency.

Not available on Dask (refused unless at their default, with an error naming
the option): ``backend="reference"`` (the chunks run in the compiled
kernels), ``copy=False`` (each chunk is converted where it lives) and
``shuffle_block`` (the chunks are the blocks); not yet, and refused the same
way: ``standardize=True`` and ``lr="auto"`` (each needs a pass of its own
over the chunks first). ``n_threads`` is the threads
of the compiled kernel inside each chunk's task (None, the default: 1, since
Dask already runs the chunks in parallel); results do not depend on it.

Data are read once per epoch from wherever the Dask graph gets them: call
``X, y = dask.persist(X, y)`` first when they fit in the cluster's memory,
or every epoch recomputes (reloads) the chunks. A worker that dies is
replaced and the chunks it held are recomputed from their source: the fit
ends with the same bits. Data that existed only in a dead worker's memory
(``client.scatter``) cannot be recomputed: :class:`DataLostError`, carrying
the last parameters and the training state.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, cast

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "gdcore.dask needs Dask (dask[array]); install it with "
        "pip install \"gdcore[dask]\" (which also brings distributed, for clusters)"
    ) from exc

from . import _api, _curvature, _dispatch, _options, _validation
from ._checkpoint import Checkpoint, fingerprint
from ._dask_chunks import Chunks, predict_chunk, tree_sum
from ._dask_trainers import (
    STRATEGIES,
    BatchTrainer,
    DataLostError,
    LocalTrainer,
    SequentialTrainer,
)
from ._options import Config
from ._results import FitResult
from ._state import Data, to_params
from ._training import train

__all__ = ["DataLostError", "fit", "max_stable_lr", "predict", "value_and_grad"]

#: Options of gdcore.fit that gdcore.dask.fit does not take (other than at
#: their defaults), and why.
NOT_ON_DASK = {
    "backend": "the chunks run in the compiled kernels",
    "copy": "each chunk is converted where it lives",
    "shuffle_block": "the chunks are the blocks: rows are shuffled within each chunk",
    "standardize": "no standardizing pass over Dask chunks yet",
}


class DaskBackend:
    """Trainers over Dask arrays (the compiled kernels on every chunk)."""

    name = "dask"

    def __init__(self, weights: Any = None, strategy: str = "sequential",
                 sync_every: int | None = None) -> None:
        self.weights, self.strategy, self.sync_every = weights, strategy, sync_every

    def trainer(self, data: Data, config: Config) -> Any:
        if config.batch_size >= data.n_train:
            return BatchTrainer(data, config, self.weights)
        if self.strategy == "local":
            return LocalTrainer(data, config, self.weights, self.sync_every)
        return SequentialTrainer(data, config, self.weights)


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

def _as_dask(value: Any) -> Any:
    """A Dask DataFrame or Series as a Dask array; unknown chunk sizes measured
    (on a new array object: the caller's is not touched)."""
    if not isinstance(value, da.Array) and hasattr(value, "to_dask_array"):
        value = value.to_dask_array(lengths=True)
    if isinstance(value, da.Array) and any(math.isnan(size) for size in value.shape):
        value = da.Array(value.__dask_graph__(), value.name, value.chunks,
                         meta=value._meta).compute_chunk_sizes()
    return value


def _check_X_y(X: Any, y: Any) -> tuple[Any, Any]:
    return _validation.check_dask_X_y(_as_dask(X), _as_dask(y), da)


def _normalise(weights: np.ndarray, largest: float, mean: float) -> np.ndarray:
    with np.errstate(over="ignore"):
        out = np.asarray(weights, dtype=np.float64) / largest / mean
    return np.minimum(out, np.finfo(np.float64).max, out=out)


def _weight_stats(weights: Any, val: np.ndarray | None) -> tuple:
    """``(first bad index or -1, its value, largest training weight)`` of a chunk."""
    weights = np.asarray(weights, dtype=np.float64)
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        return position, float(weights[position]), 0.0
    used = weights if val is None else np.delete(weights, val)
    return -1, 0.0, float(used.max()) if used.size else 0.0


def _scaled_sum(weights: Any, val: np.ndarray | None, largest: float) -> float:
    weights = np.asarray(weights, dtype=np.float64)
    used = weights if val is None else np.delete(weights, val)
    return float((used / largest).sum())


def _sample_weight(sample_weight: Any, X: Any, val_rows: np.ndarray | None,
                   scale: tuple[float, float] | None) -> tuple[Any, Any]:
    """The normalised weights as a Dask array chunked like ``X`` (or None), and
    their scale: as :func:`gdcore.fit` (``_validation.check_sample_weight``);
    in-memory weights are normalised exactly as there, Dask weights chunk by
    chunk (their mean summed per chunk: equal to about 1e-16 relative)."""
    if sample_weight is None:
        return None, scale
    n, row_chunks = int(X.shape[0]), (X.chunks[0],)
    sample_weight = _as_dask(sample_weight)
    if not isinstance(sample_weight, da.Array):
        train_rows = None
        if val_rows is not None:
            keep = np.ones(n, dtype=bool)
            keep[val_rows] = False
            train_rows = np.flatnonzero(keep)
        normalised, scale = _validation.check_sample_weight(sample_weight, n, train_rows,
                                                            scale)
        assert normalised is not None
        return da.from_array(normalised, chunks=row_chunks), scale
    if sample_weight.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight must hold real numbers; got {sample_weight.dtype} "
                        f"data (dask array of shape {sample_weight.shape})")
    if sample_weight.ndim != 1 or sample_weight.shape[0] != n:
        raise ValueError(f"sample_weight must have shape ({n},), one weight per sample; "
                         f"got shape {sample_weight.shape}")
    weights = sample_weight.rechunk(row_chunks)
    parts = weights.to_delayed().ravel()
    starts = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(int)
    vals: list[np.ndarray | None] = []
    for start, stop in zip(starts[:-1], starts[1:], strict=True):
        if val_rows is None:
            vals.append(None)
            continue
        lo, hi = np.searchsorted(val_rows, [start, stop])
        vals.append((val_rows[lo:hi] - start).astype(np.intp))
    stats = dask.compute(*[dask.delayed(_weight_stats, pure=True)(part, val)
                           for part, val in zip(parts, vals, strict=True)])
    for (position, value, _), start in zip(stats, starts, strict=False):
        if position >= 0:
            raise ValueError(f"sample_weight must be finite and >= 0; got {value} at index "
                             f"{int(start) + position}")
    used_max = max(largest for _, _, largest in stats)
    if used_max == 0.0:
        raise ValueError("sample_weight must not be all zero (on the training rows)")
    if scale is None:
        total = dask.compute(tree_sum([dask.delayed(_scaled_sum, pure=True)(part, val, used_max)
                                       for part, val in zip(parts, vals, strict=True)]))[0]
        n_train = n if val_rows is None else n - int(val_rows.shape[0])
        scale = (used_max, float(total) / n_train)
    largest, mean = scale
    with np.errstate(over="ignore"):
        if not math.isfinite(used_max / largest / mean):
            raise ValueError(f"sample_weight is too large next to the weights that set this "
                             f"run's scale (the largest of its first weighted call was "
                             f"{largest:g}): up to {used_max:g} here, a ratio float64 cannot "
                             f"hold")
    return weights.map_blocks(_normalise, largest, mean, dtype=np.float64), scale


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------

def value_and_grad(X: Any, y: Any, w: Any, b: Any = 0.0, *, loss: str = "mse",
                   n_threads: int = 1) -> tuple[float, np.ndarray, Any]:
    """Loss and gradient of the linear model over all rows of a Dask array.

    The same numbers as :func:`gdcore.value_and_grad` on the data in memory,
    to about 1e-15 relative: each chunk's raw sums come from the compiled
    kernel on its worker, and are added in a fixed tree on the workers (the
    same bits on every run).

    Parameters
    ----------
    X : dask.array.Array or dask DataFrame, (n_samples, n_features) or (n_samples,)
        Real-valued; chunks along the columns are merged first. Chunks that
        are not float64 C-contiguous are converted on their worker.
    y : dask.array.Array, Series or array-like of shape (n_samples,) or (n_samples, k)
        Targets; rechunked (or chunked) like ``X``'s rows.
    w : array-like of shape (n_features,), or (n_features, k) for k outputs
        Weights; finite.
    b : float, or array-like of shape (k,), default 0.0
        Intercept; finite.
    loss : {"mse", "half_mse"}, default "mse"
    n_threads : int, default 1
        Threads of the compiled pass inside each chunk's task (Dask already
        runs chunks in parallel). Results do not depend on it.

    Returns
    -------
    loss : float
        The loss at ``w`` and ``b``.
    grad_w : ndarray of shape (n_features,) or (n_features, k)
        Its gradient with respect to ``w``.
    grad_b : float, or ndarray of shape (k,)
        Its derivative with respect to ``b``.

    Raises
    ------
    TypeError, ValueError
        As :func:`gdcore.value_and_grad`; also when ``X`` is not a Dask array.
    """
    X, y = _check_X_y(X, y)
    outputs = None if y.ndim == 1 else int(y.shape[1])
    w = _validation.check_weights(w, X.shape[1], "w", outputs)
    b = _validation.check_intercept(b, "b", outputs)
    loss_factor = _options.loss_factor(loss)
    n_threads = _validation.check_int(n_threads, "n_threads", minimum=1,
                                      maximum=_validation.MAX_THREADS)
    chunks = Chunks(X, y)
    sums = chunks.sums(to_params(w, b), n_threads)
    n, d, k = chunks.n_samples, chunks.n_features, outputs or 1
    value = loss_factor * sums[0] / n
    if not math.isfinite(value):
        chunks.raise_if_nonfinite()
    scale = 2.0 * loss_factor / n
    with np.errstate(over="ignore", invalid="ignore"):
        grad_w = scale * sums[1 + k:].reshape(k, d).T
        grad_b = scale * sums[1:1 + k]
    if outputs is None:
        return float(value), grad_w[:, 0].copy(), float(grad_b[0])
    return float(value), grad_w.copy(), grad_b


def predict(X: Any, w: Any, b: Any = 0.0) -> da.Array:
    """Predict ``X @ w + b`` as a lazy Dask array (one task per row chunk).

    Parameters
    ----------
    X : dask.array.Array or dask DataFrame, (n_samples, n_features) or (n_samples,)
        Samples, chunked along the rows; 1-D means one feature.
    w : array-like of shape (n_features,), or (n_features, k) for k outputs
        Weights.
    b : float, or array-like of shape (k,), default 0.0
        Intercept.

    Returns
    -------
    dask.array.Array of shape (n_samples,) or (n_samples, k), float64
        Computing it raises ``ValueError`` if a chunk of ``X`` holds a
        non-finite value (as :func:`gdcore.predict` does).
    """
    X = _validation.check_dask_X(_as_dask(X), da)
    outputs = np.shape(w)[1] if np.ndim(w) == 2 else None
    w = _validation.check_weights(w, X.shape[1], "w", outputs)
    b = _validation.check_intercept(b, "b", outputs)
    if outputs is None:
        return X.map_blocks(predict_chunk, w, b, drop_axis=1, dtype=np.float64,
                            meta=np.empty((0,), dtype=np.float64))
    return X.map_blocks(predict_chunk, w, b, chunks=(X.chunks[0], (outputs,)),
                        dtype=np.float64, meta=np.empty((0, 0), dtype=np.float64))


def max_stable_lr(X: Any, *, loss: str = "mse", fit_intercept: bool = True,
                  iterations: int = 20, n_threads: int = 1) -> float:
    """:func:`gdcore.max_stable_lr` over the chunks of a Dask array.

    Parameters
    ----------
    X : dask.array.Array or dask DataFrame, (n_samples, n_features) or (n_samples,)
        Samples, chunked along the rows; 1-D means one feature.
    loss : {"mse", "half_mse"}, default "mse"
        The loss whose Hessian is estimated.
    fit_intercept : bool, default True
        Whether the model has an intercept (a column of ones in ``A``).
    iterations : int, default 20
        Power iterations (passes over ``X``, one compute each).
    n_threads : int, default 1
        Threads of the compiled pass inside each chunk's task.

    Returns
    -------
    float
        ``2 / lambda_max(H)`` (``inf`` when ``H`` is zero); the in-memory
        estimate to about 1e-15 relative.
    """
    X = _validation.check_dask_X(_as_dask(X), da)
    loss_factor = _options.loss_factor(loss)
    fit_intercept = _validation.check_bool(fit_intercept, "fit_intercept")
    iterations = _validation.check_int(iterations, "iterations", minimum=1)
    n_threads = _validation.check_int(n_threads, "n_threads", minimum=1,
                                      maximum=_validation.MAX_THREADS)
    chunks = Chunks(X, da.zeros(X.shape[0], chunks=(X.chunks[0],)))
    return _stable_lr(chunks, X, loss_factor, fit_intercept, iterations, n_threads)


class _ChunkSums:
    """What a curvature estimate (:mod:`gdcore._curvature`) asks of a backend,
    over the chunks: the raw sums of a pass with targets 0."""

    def __init__(self, chunks: Chunks) -> None:
        self.chunks = chunks

    def sums(self, X: Any, Y: Any, params: np.ndarray, n_threads: int, *,
             weights: Any = None, standardize: Any = None) -> np.ndarray:
        return self.chunks.sums(params, n_threads, targets=False)


def _stable_lr(chunks: Chunks, X: Any, loss_factor: float, fit_intercept: bool,
               iterations: int, n_threads: int) -> float:
    """``2 / L`` by power iteration over the chunks (``inf`` when ``L`` is 0)."""
    curvature = _curvature.largest_curvature(
        cast(Any, _ChunkSums(chunks)), X, loss_factor=loss_factor,
        fit_intercept=fit_intercept, n_threads=n_threads, iterations=iterations)
    if not math.isfinite(curvature):
        chunks.raise_if_nonfinite()
        raise ValueError("X is too large for the estimate: X.T @ X overflows float64; "
                         "scale X down")
    return 2.0 / curvature if curvature > 0.0 else math.inf


def fit(X: Any, y: Any, *, strategy: str = "sequential", sync_every: int | None = None,
        **options: Any) -> FitResult:
    """Train ``y ~ X @ w + b`` by gradient descent on Dask arrays.

    :func:`gdcore.fit` on data spread over a cluster: the same keywords, with
    the same defaults and meanings, the same training loop and result (see the
    module documentation for how an epoch is distributed). A ``FitResult``
    (or its ``state``) from either function warm-starts the other.

    Parameters
    ----------
    X : dask.array.Array or dask DataFrame, (n_samples, n_features) or (n_samples,)
        Real-valued; chunks along the columns are merged first; unknown chunk
        sizes are measured first (one pass). Never modified.
    y : dask.array.Array, Series or array-like of shape (n_samples,) or (n_samples, k)
        Targets; rechunked (or chunked) like ``X``'s rows. Never modified.
    strategy : {"sequential", "local"}, default "sequential"
        How ``method="sgd"`` and ``"minibatch"`` use the cluster: the chunks
        one after the other (exact: the in-memory bits), or local SGD, every
        chunk a replica in parallel, averaged every ``sync_every`` rows. Not
        for ``method="batch"``, which is always parallel.
    sync_every : int or None, default None
        ``strategy="local"``: average the replicas after every this many rows
        of each replica (rounded up to whole batches); None: once per epoch.
    **options
        The keywords of :func:`gdcore.fit`, except those in ``NOT_ON_DASK``
        (refused unless at their default). ``n_threads`` is the threads of
        the compiled kernel inside each chunk's task (None: 1); results do
        not depend on it. ``sample_weight`` may be a Dask array.

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
        within the epoch and the history so far.
    DataLostError
        Chunks held only by a worker that died (see the module documentation).
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
    strategy = _validation.check_choice(strategy, "strategy", STRATEGIES)
    if sync_every is not None:
        sync_every = _validation.check_int(sync_every, "sync_every", minimum=1)
    if strategy == "local" and config.method == "batch":
        raise ValueError("strategy='local' applies to method='sgd' and 'minibatch' "
                         "(method='batch' is always parallel); got strategy='local' with "
                         "method='batch'")
    X, y = _check_X_y(X, y)
    n_samples, n_features = (int(size) for size in X.shape)
    outputs = None if y.ndim == 1 else int(y.shape[1])
    _dispatch.require()
    state = _api.start_state(config, arguments, n_features, outputs)
    checkpoint, saved = None, None
    if config.checkpoint is not None:
        checkpoint = Checkpoint(config.checkpoint, config.checkpoint_seconds, fingerprint(
            config, X, y, arguments["sample_weight"], state)
            + f" dask strategy={strategy} sync_every={sync_every}")
        saved = checkpoint.load()
        if saved is not None:
            state = saved.state
    train_rows, val_rows = _api._held_out(config, state, n_samples)
    weights, state.weight_scale = _sample_weight(arguments["sample_weight"], X, val_rows,
                                                 state.weight_scale)
    n_train = n_samples if train_rows is None else int(train_rows.shape[0])
    if not state.schedule_state:
        state.schedule_state = config.schedule.initial_state(config.rate)
    config = dataclasses.replace(
        config, shuffle_block=None, n_threads=config.n_threads or 1,
        batch_size={"batch": n_train, "sgd": 1}.get(config.method,
                                                    min(config.batch_size, n_train)))
    if config.check_lr:
        limit = _stable_lr(Chunks(X, y), X, config.loss_factor, config.fit_intercept,
                           _curvature.ITERATIONS, config.n_threads or 1)
        if config.rate > limit:
            warnings.warn(f"lr={config.rate:g} is above {limit:.4g}, the largest learning "
                          f"rate for which full-batch descent on this data is stable; "
                          f"training is likely to diverge: try lr <= {0.5 * limit:.3g}",
                          RuntimeWarning, stacklevel=2)
    data = Data(X=X, y=y, train_rows=train_rows, val_rows=val_rows)
    return train(DaskBackend(weights, strategy, sync_every), data, config, state,
                 checkpoint=checkpoint, saved=saved)


def _is_default(value: Any, default: Any) -> bool:
    return value is default or (type(value) is type(default) and value == default)
