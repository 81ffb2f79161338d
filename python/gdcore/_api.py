"""Public functions: value_and_grad, fit, predict."""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from . import _training, _validation, reference
from ._dispatch import kernels as _kernels
from ._results import FitResult


def _threads(n_threads: int | None) -> int:
    return _kernels.max_threads() if n_threads is None else n_threads


class CythonEngine:
    """Adapter that lets the shared training loop run the compiled epoch kernel."""

    name = "cython"

    def prepare(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return X, y

    def run_epoch(self, data, order, w, b, *, batch_size, lr, loss_factor, fit_intercept,
                  max_steps, n_threads):
        X, y = data
        return _kernels.run_epoch(X, y, order, w, b, batch_size, lr, loss_factor,
                                  fit_intercept, max_steps, n_threads)


_ENGINES = {"cython": CythonEngine(), "reference": reference.ENGINE}


def value_and_grad(X: Any, y: Any, w: Any, b: float = 0.0, *, loss: str = "mse",
                   backend: str = "cython",
                   n_threads: int | None = None) -> tuple[float, np.ndarray, float]:
    """Loss of the linear model on all samples and its gradient.

    One fused pass over the rows of ``X`` computes the residuals
    ``r = X @ w + b - y``, the loss and both gradients; no array of size
    ``n_samples`` is allocated.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
        Samples; 1-D means one feature. Used as is when float64 and
        C-contiguous (read-only memmaps included), otherwise converted once.
    y : array-like of shape (n_samples,)
        Targets.
    w : array-like of shape (n_features,)
        Weights at which to evaluate. Must be finite.
    b : float, default 0.0
        Intercept at which to evaluate. Must be finite.
    loss : {"mse", "half_mse"}, default "mse"
        ``mse`` is ``mean(r**2)``, ``half_mse`` is ``0.5 * mean(r**2)``.
    backend : {"cython", "reference"}, default "cython"
        Compiled kernel, or the plain-Python reference path.
    n_threads : int or None, default None
        Threads for the compiled pass (None: OpenMP's default, usually every
        core). The result is bit-for-bit the same for any value.

    Returns
    -------
    loss : float
    grad_w : ndarray of shape (n_features,)
        ``dL/dw = (2a/n) * X.T @ r`` (``a`` = 1 for mse, 0.5 for half_mse).
    grad_b : float
        ``dL/db = (2a/n) * sum(r)``.

    Raises
    ------
    TypeError, ValueError
        Bad shapes, dtypes, non-finite values in ``X``, ``y``, ``w`` or ``b``,
        unknown ``loss`` or ``backend``. When the inputs are finite but the
        loss overflows (huge ``w``), the non-finite values are returned.
    """
    X, y = _validation.check_X_y(X, y)
    w = _validation.check_weights(w, X.shape[1], "w")
    b = _validation.check_real(b, "b")
    loss_factor = _validation.check_loss(loss)
    _validation.check_choice(backend, "backend", _validation.BACKENDS)
    n_threads = _validation.check_n_threads(n_threads)

    if backend == "cython":
        grad_w = np.empty(X.shape[1])
        value, grad_b = _kernels.value_and_grad(X, y, w, b, loss_factor, grad_w,
                                                _threads(n_threads))
    else:
        value, grad_list, grad_b = reference.loss_and_gradient(
            X.tolist(), y.tolist(), w.tolist(), b, loss_factor)
        grad_w = np.array(grad_list, dtype=np.float64)
    if not math.isfinite(value):
        _validation.raise_if_nonfinite_input(X, y)
    return float(value), grad_w, float(grad_b)


def predict(X: Any, w: Any, b: float = 0.0) -> np.ndarray:
    """Predictions ``X @ w + b`` of the linear model.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
        Samples; 1-D means one feature.
    w : array-like of shape (n_features,)
    b : float, default 0.0

    Returns
    -------
    ndarray of shape (n_samples,)

    Raises
    ------
    TypeError, ValueError
        Bad shapes or dtypes; non-finite values in ``X``, ``w`` or ``b``.
        When the inputs are finite but a prediction overflows, it is returned
        as ``inf``.
    """
    X = _validation.check_X(X)
    w = _validation.check_weights(w, X.shape[1], "w")
    b = _validation.check_real(b, "b")
    with np.errstate(invalid="ignore", over="ignore"):
        predictions = X @ w
        predictions += b
    if not np.isfinite(predictions).all():
        _validation.raise_if_nonfinite_input(X)
    return predictions


def fit(X: Any, y: Any, *, method: str = "minibatch", batch_size: int = 32,
        lr: float = 0.01, epochs: int = 10, w0: Any = None, b0: float = 0.0,
        fit_intercept: bool = True, loss: str = "mse", shuffle: bool = True,
        seed: Any = None, backend: str = "cython",
        n_threads: int | None = None) -> FitResult:
    """Train ``y ~ X @ w + b`` by gradient descent on the squared error.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
        Samples; 1-D means one feature. A float64 C-contiguous array (a
        read-only memmap included) is used as is and never copied; anything
        else is converted to one once. Never modified.
    y : array-like of shape (n_samples,)
        Targets. Never modified.
    method : {"batch", "sgd", "minibatch"}, default "minibatch"
        ``batch``: one update per epoch on all samples. ``sgd``: one update per
        sample. ``minibatch``: one update per ``batch_size`` samples; the last
        batch of an epoch may be smaller and is averaged over its own size.
    batch_size : int, default 32
        Used by ``minibatch`` only (validated always). 1 is exactly ``sgd``,
        ``>= n_samples`` exactly ``batch``.
    lr : float, default 0.01
        Learning rate, a positive finite number: ``w -= lr * dL/dw``.
    epochs : int, default 10
        Passes over the data (0 returns the initial parameters).
    w0 : array-like of shape (n_features,) or None, default None
        Initial weights (zeros when None). Copied, never modified.
    b0 : float, default 0.0
        Initial intercept; stays fixed when ``fit_intercept=False``.
    fit_intercept : bool, default True
        Learn ``b``; when False, ``b`` stays at ``b0``.
    loss : {"mse", "half_mse"}, default "mse"
        ``mean(r**2)`` or ``0.5 * mean(r**2)``.
    shuffle : bool, default True
        Visit the samples in a random order, a fresh permutation every epoch,
        drawn from ``numpy.random.default_rng(seed)`` (epoch 0 uses
        ``rng.permutation(n)``; each later epoch shuffles the previous order
        in place). False visits 0..n-1 every epoch.
    seed : int, SeedSequence, Generator or None, default None
        Seed of the shuffling; same seed, same result.
    backend : {"cython", "reference"}, default "cython"
        Compiled kernels, or the plain-Python reference path (same results to
        ``rtol=1e-9``).
    n_threads : int or None, default None
        Threads for the full-data gradient of ``method="batch"`` (None:
        OpenMP's default). Results are bit-for-bit the same for any value.

    Returns
    -------
    FitResult
        ``w``, ``b``, ``history`` (loss per epoch), ``epochs_run``,
        ``n_steps``, ``batch_size``.

    Raises
    ------
    TypeError, ValueError
        Bad inputs (see DESIGN.md): raised before any training, except that a
        non-finite value in ``X`` or ``y`` is found when it first makes a loss
        non-finite; either way nothing passed in is modified.
    DivergenceError
        The loss or the parameters stopped being finite (learning rate too
        large). The error carries the last finite parameters, the epoch and
        step, and the history so far.
    """
    X, y = _validation.check_X_y(X, y)
    n_samples, n_features = X.shape
    method = _validation.check_choice(method, "method", _validation.METHODS)
    batch_size = _validation.check_int(batch_size, "batch_size", minimum=1)
    lr = _validation.check_real(lr, "lr", positive=True)
    epochs = _validation.check_int(epochs, "epochs", minimum=0, maximum=sys.maxsize)
    if w0 is None:
        w = np.zeros(n_features)
    else:
        w = _validation.check_weights(w0, n_features, "w0").copy()
    b0 = _validation.check_real(b0, "b0")
    fit_intercept = _validation.check_bool(fit_intercept, "fit_intercept")
    loss_factor = _validation.check_loss(loss)
    shuffle = _validation.check_bool(shuffle, "shuffle")
    seed = _validation.check_seed(seed)
    _validation.check_choice(backend, "backend", _validation.BACKENDS)
    n_threads = _validation.check_n_threads(n_threads)

    resolved_batch = {"batch": n_samples, "sgd": 1}.get(method, min(batch_size, n_samples))
    return _training.train(
        _ENGINES[backend], X, y, w, b0, method=method, batch_size=resolved_batch, lr=lr,
        epochs=epochs, loss_factor=loss_factor, fit_intercept=fit_intercept,
        shuffle=shuffle, seed=seed, n_threads=_threads(n_threads))
