"""gdcore on Dask arrays: train on data spread over a cluster (optional extra).

Install with ``pip install "gdcore[dask]"``; ``import gdcore`` never imports
Dask, this module does (``import gdcore.dask``).

``X`` is a ``dask.array.Array`` of shape (n_samples, n_features) (or
(n_samples,), one feature), chunked along the rows; ``y`` a Dask array (or an
in-memory array-like, then chunked like ``X``'s rows). Every chunk is handed to
gdcore's compiled kernels where it lives (on a ``distributed`` worker, when a
``distributed.Client`` is active, else in Dask's default local scheduler), and
only O(``n_features``) numbers travel per chunk.

Two ways of training, one per kind of method:

``method="batch"`` (parallel)
    Each epoch, every chunk computes its sums ``sum(r**2)``, ``sum(r)`` and
    ``X_chunk.T @ r`` in parallel with the compiled kernel (its raw-sum entry
    point, no rescaling); the client adds them **in chunk order** (a fixed order, so the
    result does not depend on which worker finished first) and takes the
    step. The result equals :func:`gdcore.fit` with ``method="batch"`` on the
    same data in memory to about 1e-15 relative (the two only group the sum
    over rows differently; the tests hold it to 1e-12), and is the same bits
    on every run, cluster size and chunk placement for the same chunking.

``method="sgd"`` and ``"minibatch"`` (sequential)
    The chunks are streamed **one after the other, in order** through the
    compiled epoch kernel (one epoch of :func:`gdcore.fit` per chunk), each on
    the worker that holds it; only the parameters travel from chunk to chunk.
    This is inherently sequential (each update needs the previous one): a
    cluster adds memory, not speed. Batches **restart at every chunk
    boundary**: the last batch of a chunk may be smaller and is averaged over
    its own size (as the last batch of an epoch is in memory), and no batch
    spans two chunks. So with chunks whose sizes
    are multiples of ``batch_size`` (always, for ``sgd``) and ``shuffle=False``
    the parameters are the same bits as :func:`gdcore.fit` with
    ``shuffle=False`` in memory (the loss history to 1e-12). ``shuffle=True``
    keeps the chunk order and visits the rows of each chunk in a fresh random
    order every epoch.

Data are read once per epoch from wherever the Dask graph gets them: call
``X, y = dask.persist(X, y)`` first when they fit in the cluster's memory,
or every epoch recomputes (reloads) the chunks.
"""

from __future__ import annotations

import math
import sys
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

from . import _api, _validation
from ._dispatch import kernels
from ._results import DivergenceError, FitResult

__all__ = ["fit", "predict", "value_and_grad"]

_DBL_MAX = sys.float_info.max
_REAL_KINDS = "biuf"


# ---------------------------------------------------------------------------
# Validation of Dask inputs (the per-chunk array checks are _validation's,
# run on the worker on each chunk)
# ---------------------------------------------------------------------------

def _check_dask_X(X: Any) -> "da.Array":
    """``X`` as a 2-D Dask array with one chunk along the columns."""
    if not isinstance(X, da.Array):
        raise TypeError(f"X must be a dask.array.Array (gdcore.fit takes in-memory "
                        f"arrays); got {_validation.describe(X)}")
    if X.dtype.kind not in _REAL_KINDS:
        raise TypeError(f"X must hold real numbers (bool, integer or float); got "
                        f"{X.dtype} data (dask array of shape {X.shape})")
    if X.ndim == 1:
        X = X[:, None]
    elif X.ndim != 2:
        raise ValueError(f"X must be 1-D (n_samples,) or 2-D (n_samples, n_features); "
                         f"got {X.ndim}-D with shape {X.shape}")
    if any(math.isnan(size) for size in X.shape):
        raise ValueError(f"X must have known chunk sizes; got shape {X.shape} (call "
                         f"X.compute_chunk_sizes() first)")
    if X.shape[0] == 0:
        raise ValueError(f"X must have at least one sample; got shape {X.shape}")
    if X.shape[1] == 0:
        raise ValueError(f"X must have at least one feature; got shape {X.shape}")
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    return X


def _check_dask_X_y(X: Any, y: Any) -> tuple["da.Array", "da.Array"]:
    """Check ``X`` and ``y``; return them with ``y`` chunked like ``X``'s rows."""
    X = _check_dask_X(X)
    if not isinstance(y, da.Array):
        y = _validation.as_float_array(y, "y")
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D (n_samples,); got {y.ndim}-D with shape "
                             f"{y.shape}")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X and y must have the same number of samples; got X with "
                             f"{X.shape[0]} and y with {y.shape[0]}")
        return X, da.from_array(y, chunks=(X.chunks[0],))
    if y.dtype.kind not in _REAL_KINDS:
        raise TypeError(f"y must hold real numbers (bool, integer or float); got "
                        f"{y.dtype} data (dask array of shape {y.shape})")
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (n_samples,); got {y.ndim}-D with shape {y.shape}")
    if math.isnan(y.shape[0]):
        raise ValueError(f"y must have known chunk sizes; got shape {y.shape} (call "
                         f"y.compute_chunk_sizes() first)")
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X and y must have the same number of samples; got X with "
                         f"{X.shape[0]} and y with {y.shape[0]}")
    if y.chunks[0] != X.chunks[0]:
        y = y.rechunk((X.chunks[0],))
    return X, y


class _Chunks:
    """The non-empty row chunks of ``X`` and ``y``, in order, as Dask delayeds."""

    def __init__(self, X: "da.Array", y: "da.Array") -> None:
        x_parts = X.to_delayed().ravel()
        y_parts = y.to_delayed().ravel()
        self.parts = []     # (X chunk, y chunk, first row, rows)
        start = 0
        for x_part, y_part, rows in zip(x_parts, y_parts, X.chunks[0]):
            if rows > 0:    # a zero-row chunk holds nothing to learn from
                self.parts.append((x_part, y_part, start, int(rows)))
            start += rows
        self.n_samples = int(X.shape[0])
        self.n_features = int(X.shape[1])

    def sums(self, w: np.ndarray, b: float, n_threads: int) -> np.ndarray:
        """``[sum r**2, sum r, *(X.T @ r)]`` over all rows, chunks added in order."""
        tasks = [dask.delayed(_chunk_sums, pure=True)(x, y, w, b, n_threads)
                 for x, y, _, _ in self.parts]
        parts = dask.compute(*tasks)            # results come back in chunk order
        for part in parts:
            if isinstance(part, ValueError):
                self.raise_if_nonfinite()
                raise part
        total = None
        for part in parts:
            if total is None:
                total = part.copy()
            else:
                total += part
        return total

    def raise_if_nonfinite(self) -> None:
        """``ValueError`` naming the first non-finite value of ``X``, else of ``y``."""
        tasks = [dask.delayed(_first_nonfinite, pure=True)(x, y)
                 for x, y, _, _ in self.parts]
        found = dask.compute(*tasks)
        for name in ("X", "y"):
            for (_, _, start, _), hits in zip(self.parts, found):
                if name in hits:
                    position, value = hits[name]
                    row = start + position[0]
                    where = row if name == "y" else (row, position[1])
                    raise ValueError(f"{name} must contain only finite values; got "
                                     f"{value} at index {where}")


# ---------------------------------------------------------------------------
# What runs on the workers, one chunk at a time
# ---------------------------------------------------------------------------

def _chunk_sums(X: np.ndarray, y: np.ndarray, w: np.ndarray, b: float,
                n_threads: int) -> np.ndarray | ValueError:
    """``[sum r**2, sum r, *(X.T @ r)]`` of one chunk: the compiled kernel's raw
    sums (``full_sums``), so chunks add up without any rescaling.

    A ``ValueError`` (a non-finite value in the chunk) is returned, not raised,
    so that the client can name the first one over all chunks.
    """
    try:
        X, y = _validation.check_X_y(X, y)
    except ValueError as exc:
        return exc
    out = np.empty(X.shape[1] + 2)
    kernels.full_sums(X, y, None, np.ascontiguousarray(w, dtype=np.float64), float(b),
                      out, n_threads)
    if not np.isfinite(out[0]):
        try:
            _validation.raise_if_nonfinite_input(X, y)
        except ValueError as exc:
            return exc
    return out


def _first_nonfinite(X: np.ndarray, y: np.ndarray) -> dict:
    """``{name: (index, value)}`` of the first non-finite value of a chunk's X and y."""
    X, y = _validation.check_X_y(X, y)
    hits = {}
    for name, array in (("X", X), ("y", y)):
        bad = ~np.isfinite(array)
        if bad.any():
            position = tuple(int(i) for i in np.argwhere(bad)[0])
            hits[name] = (position, float(array[position]))
    return hits


def _finite(w: np.ndarray, b: float) -> bool:
    return math.isfinite(b) and bool(np.isfinite(w).all())


def _stream_chunk(X: np.ndarray, y: np.ndarray, seed: int | None, state: tuple,
                  method: str, batch_size: int, lr: float, loss: str,
                  fit_intercept: bool, n_threads: int) -> tuple:
    """One epoch of :func:`gdcore.fit` over one chunk, continuing from ``state``.

    ``state`` is ``(w, b, steps, loss_sum, failure)``. ``failure`` is None, or
    ``("diverged", step)`` (the epoch's step, counted over all chunks, at which
    the loss or the parameters stopped being finite; ``w``, ``b`` are then the
    last finite parameters), or ``("input", error)`` (a non-finite value in
    this chunk). Once it is set, later chunks pass the state on untouched.
    """
    w, b, steps_before, loss_before, failure = state
    if failure is not None:
        return state
    try:
        result = _api.fit(X, y, method=method, batch_size=batch_size, lr=lr, epochs=1,
                          w0=w, b0=b, fit_intercept=fit_intercept, loss=loss,
                          shuffle=seed is not None, seed=seed, n_threads=n_threads)
    except DivergenceError as err:
        step = steps_before + err.step
        return err.w, err.b, step, loss_before, ("diverged", step)
    except ValueError as exc:
        return w, b, steps_before, loss_before, ("input", exc)
    steps = result.n_steps
    return (result.w, result.b, steps_before + steps,
            loss_before + float(result.history[0]) * steps, None)


def _predict_chunk(X: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    return _api.predict(X, w, b)


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
    grad_w : ndarray of shape (n_features,)
    grad_b : float

    Raises
    ------
    TypeError, ValueError
        As :func:`gdcore.value_and_grad`; also when ``X`` is not a Dask array
        or has unknown chunk sizes.
    """
    X, y = _check_dask_X_y(X, y)
    w = _validation.check_weights(w, X.shape[1], "w")
    b = _validation.check_real(b, "b")
    loss_factor = _validation.check_loss(loss)
    n_threads = _validation.check_int(n_threads, "n_threads", minimum=1,
                                      maximum=_validation.MAX_THREADS)
    chunks = _Chunks(X, y)
    sums = chunks.sums(w, b, n_threads)
    n = chunks.n_samples
    scale = 2.0 * loss_factor / n
    value = loss_factor * sums[0] / n
    if not math.isfinite(value):
        chunks.raise_if_nonfinite()
    return float(value), scale * sums[2:], float(scale * sums[1])


def predict(X: Any, w: Any, b: float = 0.0) -> "da.Array":
    """Predictions ``X @ w + b`` as a lazy Dask array (one task per row chunk).

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features) or (n_samples,)
    w : array-like of shape (n_features,)
    b : float, default 0.0

    Returns
    -------
    dask.array.Array of shape (n_samples,), float64
        Computing it raises ``ValueError`` if a chunk of ``X`` holds a
        non-finite value (as :func:`gdcore.predict` does).
    """
    X = _check_dask_X(X)
    w = _validation.check_weights(w, X.shape[1], "w")
    b = _validation.check_real(b, "b")
    return X.map_blocks(_predict_chunk, w, b, drop_axis=1, dtype=np.float64,
                        meta=np.empty((0,), dtype=np.float64))


def fit(X: Any, y: Any, *, method: str = "batch", batch_size: int = 32,
        lr: float = 0.01, epochs: int = 10, w0: Any = None, b0: float = 0.0,
        fit_intercept: bool = True, loss: str = "mse", shuffle: bool = False,
        seed: Any = None, n_threads: int = 1) -> FitResult:
    """Train ``y ~ X @ w + b`` by gradient descent on Dask arrays.

    Same parameters and meaning as :func:`gdcore.fit`, except where noted
    (see the module documentation for how the work is distributed).

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features) or (n_samples,)
        Real-valued, with known chunk sizes; chunks along the columns are
        merged first. Never modified.
    y : dask.array.Array or array-like of shape (n_samples,)
        Targets; rechunked (or chunked) like ``X``'s rows. Never modified.
    method : {"batch", "sgd", "minibatch"}, default "batch"
        ``batch`` runs the chunks in parallel each epoch (the default here,
        as the one method a cluster speeds up); ``sgd`` and ``minibatch``
        stream the chunks sequentially, in order.
    batch_size : int, default 32
        ``minibatch`` only. Batches restart at each chunk boundary: the last
        batch of every chunk may be smaller, averaged over its own size.
    lr : float, default 0.01
    epochs : int, default 10
    w0 : array-like of shape (n_features,) or None, default None
    b0 : float, default 0.0
    fit_intercept : bool, default True
    loss : {"mse", "half_mse"}, default "mse"
    shuffle : bool, default False
        ``sgd``/``minibatch`` only: visit the chunks in order and the rows of
        each chunk in a random order: every epoch, chunk after chunk, the
        client draws ``s = rng.integers(2**63)`` from
        ``rng = numpy.random.default_rng(seed)`` and the chunk's epoch is
        ``gdcore.fit(X_chunk, y_chunk, epochs=1, shuffle=True, seed=s, ...)``.
        False: rows in storage order.
    seed : int, SeedSequence, Generator or None, default None
        Seed of the shuffling.
    n_threads : int, default 1
        Threads of the compiled kernel inside each chunk's task; results do
        not depend on it.

    Returns
    -------
    FitResult
        As :func:`gdcore.fit`, with ``backend="dask"``. ``history[k]`` is the
        mean of epoch ``k``'s batch losses (for ``batch``, the full-data loss
        before the update).

    Raises
    ------
    TypeError, ValueError
        Bad inputs, before any training (a non-finite value in ``X`` or ``y``
        when it first makes a loss non-finite, naming its global index).
    DivergenceError
        As :func:`gdcore.fit`: the loss or the parameters stopped being
        finite; carries the last finite parameters, the epoch and the step
        within the epoch (counted over all chunks) and the history so far.
    """
    X, y = _check_dask_X_y(X, y)
    n_samples, n_features = (int(size) for size in X.shape)
    method = _validation.check_choice(method, "method", _validation.METHODS)
    batch_size = _validation.check_int(batch_size, "batch_size", minimum=1)
    lr = _validation.check_real(lr, "lr", positive=True)
    epochs = _validation.check_int(epochs, "epochs", minimum=0, maximum=sys.maxsize)
    if w0 is None:
        w = np.zeros(n_features)
    else:
        w = _validation.check_weights(w0, n_features, "w0").copy()
    b = _validation.check_real(b0, "b0")
    fit_intercept = _validation.check_bool(fit_intercept, "fit_intercept")
    loss_factor = _validation.check_loss(loss)
    shuffle = _validation.check_bool(shuffle, "shuffle")
    seed = _validation.check_seed(seed)
    n_threads = _validation.check_int(n_threads, "n_threads", minimum=1,
                                      maximum=_validation.MAX_THREADS)

    chunks = _Chunks(X, y)
    if method == "batch":
        w, b, history = _fit_batch(chunks, w, b, lr=lr, epochs=epochs,
                                   loss_factor=loss_factor, fit_intercept=fit_intercept,
                                   n_threads=n_threads)
        n_steps, resolved = len(history), n_samples
    else:
        resolved = 1 if method == "sgd" else min(batch_size, n_samples)
        w, b, history, n_steps = _fit_stream(
            chunks, w, b, method=method, batch_size=resolved, lr=lr, epochs=epochs,
            loss=loss, fit_intercept=fit_intercept, shuffle=shuffle, seed=seed,
            n_threads=n_threads)
    return FitResult(w=w, b=float(b), history=np.array(history), epochs_run=epochs,
                     n_steps=n_steps, batch_size=resolved, method=method,
                     backend="dask")


def _fit_batch(chunks: _Chunks, w: np.ndarray, b: float, *, lr: float, epochs: int,
               loss_factor: float, fit_intercept: bool,
               n_threads: int) -> tuple[np.ndarray, float, list]:
    """Full-batch gradient descent, the arithmetic of the compiled batch epoch."""
    n = chunks.n_samples
    two_a = 2.0 * loss_factor
    history: list[float] = []
    for epoch in range(epochs):
        sums = chunks.sums(w, b, n_threads)
        if not (sums[0] <= _DBL_MAX):
            chunks.raise_if_nonfinite()
            _diverged(epoch, 0, w, b, history, lr)
        c = two_a / n
        w_next = w - lr * (c * sums[2:])
        b_next = b - lr * (c * sums[1]) if fit_intercept else b
        if not _finite(w_next, b_next):
            _diverged(epoch, 0, w, b, history, lr)
        w, b = w_next, b_next
        history.append(loss_factor * (sums[0] / n))
    return w, b, history


def _fit_stream(chunks: _Chunks, w: np.ndarray, b: float, *, method: str,
                batch_size: int, lr: float, epochs: int, loss: str,
                fit_intercept: bool, shuffle: bool, seed: Any,
                n_threads: int) -> tuple[np.ndarray, float, list, int]:
    """SGD / mini-batch: each epoch streams the chunks in order through gdcore.fit."""
    rng = np.random.default_rng(seed) if shuffle else None
    steps_per_epoch = sum(-(-rows // batch_size) for _, _, _, rows in chunks.parts)
    history: list[float] = []
    n_steps = 0
    for epoch in range(epochs):
        state = (w, b, 0, 0.0, None)
        for x_part, y_part, _, _ in chunks.parts:
            chunk_seed = int(rng.integers(2 ** 63)) if rng is not None else None
            state = dask.delayed(_stream_chunk, pure=False)(
                x_part, y_part, chunk_seed, state, method, batch_size, lr, loss,
                fit_intercept, n_threads)
        w, b, steps, loss_sum, failure = dask.compute(state)[0]
        n_steps += steps
        if failure is not None:
            kind, detail = failure
            if kind == "input":
                chunks.raise_if_nonfinite()
                raise detail
            _diverged(epoch, detail, w, b, history, lr)
        history.append(loss_sum / steps_per_epoch)
    return w, b, history, n_steps


def _diverged(epoch: int, step: int, w: np.ndarray, b: float, history: list,
              lr: float) -> None:
    raise DivergenceError(
        f"training diverged in epoch {epoch}, step {step}: the loss or the "
        f"parameters stopped being finite (lr={lr} is probably too large for "
        f"this data); the error's w and b hold the last finite parameters",
        w=np.array(w, dtype=np.float64), b=float(b), epoch=epoch, step=step,
        history=np.array(history))
