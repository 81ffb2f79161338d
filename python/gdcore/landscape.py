"""Loss landscapes and descent paths: what the pictures of gradient descent show.

:func:`loss_grid` evaluates the loss at many candidate parameter vectors at
once with a compiled kernel (``gdcore/landscape.pxi``, built as the module
``gdcore._landscape``) that streams ``X`` once per block of candidates;
:func:`loss_surface` lays a one-weight problem's ``(w, b)`` grid out for a
contour plot. :func:`descent_path` runs :func:`gdcore.fit` one step at a time
and keeps every step's parameters and batch loss: the path drawn on a
landscape, and the per-step loss curve. :func:`ewma` is the exponentially
weighted moving average that smooths a loss curve.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from . import _validation, reference
from ._api import fit
from ._dispatch import KERNELS_NAME, VARIANTS
from ._results import DivergenceError


def _load_kernel() -> ModuleType:
    """The landscape build for the instruction set the main kernels use."""
    suffix = VARIANTS[KERNELS_NAME][0]
    try:
        return importlib.import_module(f"gdcore._landscape{suffix}")
    except ImportError:         # that variant was not built: the portable one is
        return importlib.import_module("gdcore._landscape")


_kernel = _load_kernel()


def _check_data(X: Any, y: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``X`` and a single-output ``y`` (n_samples,), checked as fit checks them."""
    X, y = _validation.check_X_y(X, y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (n_samples,): {what} handles one output; got "
                         f"shape {y.shape}")
    return X, y


def _check_candidates(W: Any, n_features: int) -> np.ndarray:
    """Return the candidate weights as a finite float64 (K, n_features) array."""
    W = _validation.as_float_array(W, "W")
    if W.ndim == 1 and n_features == 1:
        W = W.reshape(-1, 1)
    elif W.ndim != 2 or W.shape[1] != n_features:
        one = " or (n_candidates,) since X has one feature" if n_features == 1 else ""
        raise ValueError(
            f"W must have shape (n_candidates, {n_features}) to match X's {n_features} "
            f"feature(s){one}; got shape {W.shape}")
    finite = np.isfinite(W)
    if not finite.all():
        k, j = (int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(f"W must be finite; got {W[k, j]} at candidate {k}, feature {j}")
    return W


def _check_biases(b: Any, n_candidates: int) -> np.ndarray:
    """Return the candidate intercepts as a finite float64 (K,) array."""
    try:
        scalar = np.ndim(b) == 0
    except (TypeError, ValueError):         # ragged lists: as_float_array says why
        scalar = False
    if scalar:
        return np.full(n_candidates, _validation.check_real(b, "b"))
    B = _validation.as_float_array(b, "b")
    if B.shape != (n_candidates,):
        raise ValueError(f"b must be a number or have shape ({n_candidates},), one "
                         f"intercept per candidate of W; got shape {B.shape}")
    finite = np.isfinite(B)
    if not finite.all():
        k = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"b must be finite; got {B[k]} at candidate {k}")
    return B


def loss_grid(X: Any, y: Any, W: Any, b: Any = 0.0, *, loss: str = "mse",
              backend: str = "cython", n_threads: int | None = None) -> np.ndarray:
    """Loss of the linear model at many candidate parameter vectors at once.

    ``result[k]`` is the loss of ``y ~ X @ W[k] + b[k]`` over all samples,
    exactly what :func:`gdcore.value_and_grad` returns as its loss at
    ``(W[k], b[k])``. The compiled kernel cuts the candidates into blocks of a
    few hundred and reads ``X`` once per block (each row against all the
    block's candidates while it is in cache), with the blocks spread over the
    threads: a 200 x 200 grid of ``(w, b)`` over a million samples takes
    seconds. It does the reference path's arithmetic in the reference path's
    order, so the two backends return the same bits.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
        Samples; 1-D means one feature. Used as is when float64 and
        C-contiguous, otherwise converted once.
    y : array-like of shape (n_samples,)
        Targets (one output).
    W : array-like of shape (n_candidates, n_features), or (n_candidates,) when X has one feature
        Candidate weight vectors, one per row. Must be finite.
    b : float or array-like of shape (n_candidates,), default 0.0
        Candidate intercepts: one for all candidates, or one each. Finite.
    loss : {"mse", "half_mse"}, default "mse"
        ``mean(r**2)`` or ``0.5 * mean(r**2)`` with ``r = X @ w + b - y``.
    backend : {"cython", "reference"}, default "cython"
        Compiled kernel, or the plain-Python loops of
        :func:`gdcore.reference.loss_grid` (slow; small inputs).
    n_threads : int or None, default None
        Threads for the compiled kernel (None: OpenMP's default, usually every
        core). The result is the same for any value.

    Returns
    -------
    ndarray of shape (n_candidates,)
        The loss at each candidate. A loss that overflows (finite inputs, huge
        parameters) is ``inf``.

    Raises
    ------
    TypeError, ValueError
        Bad shapes or dtypes, non-finite ``W`` or ``b``, non-finite values in
        ``X`` or ``y`` (found when they make a loss non-finite), unknown
        ``loss`` or ``backend``, bad ``n_threads``.

    Examples
    --------
    >>> import numpy as np, gdcore
    >>> x = np.array([-1.0, 0, 1, 2, 3, 4]); y = 2 * x - 1
    >>> gdcore.loss_grid(x, y, [8.0, 2.0], -1.0)
    array([186.,   0.])
    """
    X, y = _check_data(X, y, "loss_grid")
    W = _check_candidates(W, X.shape[1])
    B = _check_biases(b, W.shape[0])
    loss_factor = _validation.check_loss(loss)
    _validation.check_choice(backend, "backend", _validation.BACKENDS)
    n_threads = _validation.check_n_threads(n_threads)

    if backend == "cython":
        out = np.empty(W.shape[0])
        threads = _kernel.max_threads() if n_threads is None else n_threads
        _kernel.loss_grid(X, y, W, B, loss_factor, out, threads)
    else:
        out = np.array(reference.loss_values(X.tolist(), y.tolist(), W.tolist(),
                                             B.tolist(), loss_factor), dtype=np.float64)
    if not np.isfinite(out).all():
        _validation.raise_if_nonfinite_input(X, y)
    return out


def _check_axis(values: Any, name: str) -> np.ndarray:
    """A non-empty, finite 1-D float64 array of grid values."""
    array = _validation.check_vector(values, name, " of values")
    _validation.raise_if_nonfinite(array, name)
    return array


def loss_surface(X: Any, y: Any, w_values: Any, b_values: Any, *, loss: str = "mse",
                 backend: str = "cython", n_threads: int | None = None) -> np.ndarray:
    """Loss of a one-weight model over a grid of ``(w, b)``: a loss landscape.

    Parameters
    ----------
    X : array-like of shape (n_samples,) or (n_samples, 1)
        Samples of a one-feature problem.
    y : array-like of shape (n_samples,)
        Targets.
    w_values : array-like of shape (n_w,)
        Weights of the grid. Finite.
    b_values : array-like of shape (n_b,)
        Intercepts of the grid. Finite.
    loss : {"mse", "half_mse"}, default "mse"
    backend : {"cython", "reference"}, default "cython"
    n_threads : int or None, default None
        As in :func:`loss_grid`, which does the work (one call, ``n_w * n_b``
        candidates).

    Returns
    -------
    ndarray of shape (n_w, n_b)
        ``surface[i, j]`` is the loss at ``(w_values[i], b_values[j])``.

    Raises
    ------
    TypeError, ValueError
        As :func:`loss_grid`; also when ``X`` has more than one feature or a
        grid axis is empty or not 1-D.
    """
    X, y = _check_data(X, y, "loss_surface")
    if X.shape[1] != 1:
        raise ValueError(f"loss_surface draws one-weight problems: X must have one "
                         f"feature; got {X.shape[1]} (use loss_grid with one candidate "
                         f"vector per row)")
    ws = _check_axis(w_values, "w_values")
    bs = _check_axis(b_values, "b_values")
    W = np.repeat(ws, bs.shape[0])
    B = np.tile(bs, ws.shape[0])
    values = loss_grid(X, y, W, B, loss=loss, backend=backend, n_threads=n_threads)
    return values.reshape(ws.shape[0], bs.shape[0])


def ewma(values: Any, smoothing: float = 0.9) -> np.ndarray:
    """Exponentially weighted moving average, the usual smoothing of a loss curve.

    ``s[0] = values[0]`` and ``s[t] = smoothing * s[t-1] + (1 - smoothing) * values[t]``.

    Parameters
    ----------
    values : array-like of shape (n,)
        The raw curve (non-empty, real).
    smoothing : float, default 0.9
        Weight of the past, in ``[0, 1)``: 0 returns the raw values, values near
        1 smooth over about ``1 / (1 - smoothing)`` points.

    Returns
    -------
    ndarray of shape (n,)

    Raises
    ------
    TypeError, ValueError
        ``values`` not a non-empty 1-D real array; ``smoothing`` not in ``[0, 1)``.
    """
    array = _validation.check_vector(values, "values")
    smoothing = _validation.check_real(smoothing, "smoothing")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1); got {smoothing}")
    out = np.empty_like(array)
    level = float(array[0])
    for t, value in enumerate(array.tolist()):
        level = smoothing * level + (1.0 - smoothing) * value
        out[t] = level
    return out


@dataclass(frozen=True)
class DescentPath:
    """Every step of a gradient-descent run (see :func:`descent_path`).

    Attributes
    ----------
    w : ndarray of shape (n_steps + 1, n_features)
        ``w[0]`` the initial weights, ``w[t + 1]`` the weights after step ``t``.
    b : ndarray of shape (n_steps + 1,)
        The intercepts, likewise.
    step_loss : ndarray of shape (n_steps,)
        Loss of step ``t``'s batch at the parameters before its update.
    history : ndarray of shape (epochs,)
        Loss per epoch as in :attr:`gdcore.FitResult.history`: the mean of the
        epoch's step losses.
    steps_per_epoch : int
    batch_size : int
        The batch size used: ``n_samples`` for batch, 1 for sgd.
    method : str
    loss : str
    backend : str
    """

    w: np.ndarray
    b: np.ndarray
    step_loss: np.ndarray
    history: np.ndarray
    steps_per_epoch: int
    batch_size: int
    method: str
    loss: str
    backend: str

    @property
    def n_steps(self) -> int:
        """Number of parameter updates."""
        return int(self.step_loss.shape[0])


def descent_path(X: Any, y: Any, *, method: str = "minibatch", batch_size: int = 32,
                 lr: float = 0.01, epochs: int = 10, w0: Any = None, b0: float = 0.0,
                 fit_intercept: bool = True, loss: str = "mse", shuffle: bool = True,
                 seed: Any = None, backend: str = "cython",
                 n_threads: int | None = None) -> DescentPath:
    """Train as :func:`gdcore.fit` does, keeping the parameters after every step.

    The samples are visited in the order ``fit`` documents for the same
    ``seed`` (``rng.permutation(n)`` afresh each epoch), cut into the same
    batches, and each step is one ``gdcore.fit(..., method="batch", epochs=1)``
    on that step's batch, with the chosen backend. So the end of the path and
    its history are ``fit``'s result (to rounding at worst; the tests find
    them equal to the bit). One Python call per step: meant for the small
    problems that pictures are made of. Plain gradient descent only: the
    options of ``fit`` beyond those below (momentum, schedules, ...) are not
    taken.

    Parameters
    ----------
    X, y
        The data, as in :func:`gdcore.fit`.
    method, batch_size, lr, epochs, w0, b0, fit_intercept, loss
        As in :func:`gdcore.fit`, and checked the same way.
    shuffle, seed, backend, n_threads
        As in :func:`gdcore.fit`, and checked the same way.

    Returns
    -------
    DescentPath
        Parameters before and after every step, each step's batch loss, the
        per-epoch history.

    Raises
    ------
    TypeError, ValueError
        Bad inputs, as :func:`gdcore.fit`; non-finite values in ``X`` or ``y``
        (checked up front here).
    DivergenceError
        A step made the loss or the parameters non-finite; the error carries
        the last finite parameters, the epoch and step (counted within the
        epoch) and the history of the complete epochs.
    """
    epochs = _validation.check_int(epochs, "epochs", minimum=0, maximum=sys.maxsize)
    _check_data(X, y, "descent_path")
    # fit with zero epochs checks every other option exactly as a real run
    # would and returns the initial parameters.
    start = fit(X, y, method=method, batch_size=batch_size, lr=lr, epochs=0, w0=w0,
                b0=b0, fit_intercept=fit_intercept, loss=loss, shuffle=shuffle, seed=seed,
                backend=backend, n_threads=n_threads)
    X, y = _validation.check_X_y(X, y)
    _validation.raise_if_nonfinite_input(X, y)
    n = X.shape[0]
    size = {"batch": n, "sgd": 1}.get(method, min(batch_size, n))
    steps_per_epoch = -(-n // size)
    # The sample order fit documents: with shuffle (and a batch smaller than
    # the data), rng.permutation(n) drawn afresh every epoch.
    rng = np.random.default_rng(seed) if shuffle and size < n else None
    order = np.arange(n, dtype=np.intp)

    w, b = start.w.copy(), start.b
    ws, bs, step_losses, history = [w.copy()], [b], [], []
    step_options = dict(method="batch", lr=lr, epochs=1, fit_intercept=fit_intercept,
                        loss=loss, shuffle=False, backend=backend, n_threads=n_threads)
    for epoch in range(epochs):
        if rng is not None:
            order = rng.permutation(n)
        epoch_sum = 0.0
        for step in range(steps_per_epoch):
            rows = order[step * size:(step + 1) * size]
            try:
                result = fit(X[rows], y[rows], w0=w, b0=b, **step_options)
            except DivergenceError as exc:
                raise DivergenceError(
                    f"training diverged in epoch {epoch}, step {step}: the loss or the "
                    f"parameters stopped being finite (lr={lr} is probably too large "
                    f"for this data); the error's w and b hold the last finite "
                    f"parameters", w=w, b=b, epoch=epoch, step=step,
                    history=np.array(history)) from exc
            step_losses.append(float(result.history[0]))
            epoch_sum += step_losses[-1]
            w, b = result.w, result.b
            ws.append(w.copy())
            bs.append(b)
        history.append(epoch_sum / steps_per_epoch)
    return DescentPath(w=np.array(ws), b=np.array(bs, dtype=np.float64),
                       step_loss=np.array(step_losses, dtype=np.float64),
                       history=np.array(history, dtype=np.float64),
                       steps_per_epoch=steps_per_epoch, batch_size=size, method=method,
                       loss=loss, backend=backend)


def max_relative_difference(a: Any, b: Any) -> float:
    """Largest ``|a - b| / max(|a|, |b|)`` over two equal-shaped arrays (0 where
    both are 0): how far two backends' answers are apart."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    scale = np.maximum(np.abs(a), np.abs(b))
    diff = np.abs(a - b)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), 0.0)
    return float(rel.max()) if rel.size else 0.0


__all__ = ["DescentPath", "descent_path", "ewma", "loss_grid", "loss_surface",
           "max_relative_difference"]
