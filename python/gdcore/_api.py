"""Public functions: value_and_grad, fit, predict."""

from __future__ import annotations

import copy
import math
import mmap
import sys
import warnings
from typing import Any, Callable

import numpy as np

from . import _training, _validation, reference, schedules
from ._dispatch import SHORT_ROW_FEATURES
from ._dispatch import kernels as _kernels
from ._dispatch import short_row_kernels as _short_row_kernels
from ._results import FitResult, TrainState


def _threads(n_threads: int | None) -> int:
    return _kernels.max_threads() if n_threads is None else n_threads


class CythonEngine:
    """Adapter that lets the shared training loop run the compiled epoch kernel."""

    name = "cython"

    def prepare(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return X, y

    def subset_loss(self, data, rows, params, loss_factor):
        X, y = data
        kernel = _kernels.subset_loss if y.ndim == 1 else _kernels.subset_loss_multi
        return kernel(X, y, rows, params, loss_factor)

    def run_epoch(self, data, order, weights, params, velocity, average, grad_sum, rule,
                  global_step, first_step, stop_step):
        X, y = data
        if y.ndim == 2:
            return _kernels.run_epoch_multi(X, y, order, weights, params, velocity, average,
                                            grad_sum, _kernels.Rule(**rule), global_step,
                                            first_step, stop_step)
        # (same bits from every build; see _dispatch.SHORT_ROW_FEATURES)
        short = rule["batch_size"] == 1 and X.shape[1] <= SHORT_ROW_FEATURES
        module = _short_row_kernels if short else _kernels
        return module.run_epoch(X, y, order, weights, params, velocity, average, grad_sum,
                                module.Rule(**rule), global_step, first_step, stop_step)


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
    y : array-like of shape (n_samples,) or (n_samples, k)
        Targets; 2-D for k outputs.
    w : array-like of shape (n_features,), or (n_features, k) for k outputs
        Weights at which to evaluate. Must be finite.
    b : float, or array-like of shape (k,) for k outputs, default 0.0
        Intercept at which to evaluate. Must be finite.
    loss : {"mse", "half_mse"}, default "mse"
        ``mse`` is ``mean(r**2)``, ``half_mse`` is ``0.5 * mean(r**2)``; with
        k outputs, the sum over outputs of each output's loss.
    backend : {"cython", "reference"}, default "cython"
        Compiled kernel, or the plain-Python reference path.
    n_threads : int or None, default None
        Threads for the compiled pass (None: OpenMP's default, usually every
        core). The result is bit-for-bit the same for any value.

    Returns
    -------
    loss : float
    grad_w : ndarray of shape (n_features,) or (n_features, k)
        ``dL/dw = (2a/n) * X.T @ r`` (``a`` = 1 for mse, 0.5 for half_mse).
    grad_b : float, or ndarray of shape (k,)
        ``dL/db = (2a/n) * sum(r)`` (over the samples).

    Raises
    ------
    TypeError, ValueError
        Bad shapes, dtypes, non-finite values in ``X``, ``y``, ``w`` or ``b``,
        unknown ``loss`` or ``backend``. When the inputs are finite but the
        loss overflows (huge ``w``), the non-finite values are returned.
    """
    X, y = _validation.check_X_y(X, y)
    outputs = _validation.n_outputs(y)
    w = _validation.check_weights(w, X.shape[1], "w", outputs)
    b = _validation.check_intercept(b, "b", outputs)
    loss_factor = _validation.check_loss(loss)
    _validation.check_choice(backend, "backend", _validation.BACKENDS)
    n_threads = _validation.check_n_threads(n_threads)

    if outputs is not None:
        return _value_and_grad_multi(X, y, w, b, loss_factor, backend, _threads(n_threads))
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


def _value_and_grad_multi(X, Y, W, b, loss_factor, backend, n_threads):
    n, d = X.shape
    k = Y.shape[1]
    params = np.concatenate([W.ravel(), b])
    if backend == "cython":
        sums = np.empty(1 + k + d * k)
        _kernels.full_sums_multi(X, Y, params, sums, n_threads)
        scale = 2.0 * loss_factor / n
        value = loss_factor * sums[0] / n
        grad_W, grad_b = scale * sums[1 + k:].reshape(d, k), scale * sums[1:1 + k]
    else:
        value, grad_list, grad_b_list = reference.loss_and_gradient_multi(
            X.tolist(), Y.tolist(), W.tolist(), b.tolist(), loss_factor)
        grad_W, grad_b = np.array(grad_list), np.array(grad_b_list)
    if not math.isfinite(value):
        _validation.raise_if_nonfinite_input(X, Y)
    return float(value), grad_W, grad_b


def predict(X: Any, w: Any, b: float = 0.0) -> np.ndarray:
    """Predictions ``X @ w + b`` of the linear model.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
        Samples; 1-D means one feature.
    w : array-like of shape (n_features,), or (n_features, k) for k outputs
    b : float, or array-like of shape (k,) for k outputs, default 0.0

    Returns
    -------
    ndarray of shape (n_samples,), or (n_samples, k)

    Raises
    ------
    TypeError, ValueError
        Bad shapes or dtypes; non-finite values in ``X``, ``w`` or ``b``.
        When the inputs are finite but a prediction overflows, it is returned
        as ``inf``.
    """
    X = _validation.check_X(X)
    outputs = np.shape(w)[1] if np.ndim(w) == 2 else None
    w = _validation.check_weights(w, X.shape[1], "w", outputs)
    b = _validation.check_intercept(b, "b", outputs)
    with np.errstate(invalid="ignore", over="ignore"):
        predictions = X @ w
        predictions += b
    if not np.isfinite(predictions).all():
        _validation.raise_if_nonfinite_input(X)
    return predictions


def fit(X: Any, y: Any, *, method: str = "minibatch", batch_size: int = 32,
        lr: float = 0.01, epochs: int = 10, w0: Any = None, b0: float = 0.0,
        fit_intercept: bool = True, loss: str = "mse", shuffle: bool = True,
        seed: Any = None, backend: str = "cython", n_threads: int | None = None,
        momentum: float = 0.0, nesterov: bool = False, dampening: float = 0.0,
        weight_decay: float = 0.0, l1: float = 0.0, decay_bias: bool = False,
        schedule: Any = "constant", average: bool | int = False,
        sample_weight: Any = None, tol: float | None = None, stop_on: str = "loss",
        n_iter_no_change: int = 5, validation_fraction: float | None = None,
        on_divergence: str = "raise", check_lr: bool = False,
        callback: Callable[[dict], Any] | None = None, callback_every: int | None = None,
        verbose: int = 0, progress: bool = False,
        warm_start: FitResult | TrainState | None = None, copy: bool = True,
        shuffle_block: int | str | None = "auto") -> FitResult:
    """Train ``y ~ X @ w + b`` by gradient descent on the squared error.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
        Samples; 1-D means one feature. A float64 C-contiguous array (a
        read-only memmap included) is used as is and never copied; anything
        else is converted to one once. Never modified.
    y : array-like of shape (n_samples,) or (n_samples, k)
        Targets. Never modified. 2-D trains k outputs at once, in the same
        passes over ``X``: ``W`` of shape (n_features, k), ``b`` of shape
        (k,); the loss is the sum over outputs of each output's loss, so each
        output learns exactly what it would learn alone.
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
    w0 : array-like of shape (n_features,) (or (n_features, k)) or None
        Initial weights (zeros when None). Copied, never modified.
    b0 : float (or array-like of shape (k,)), default 0.0
        Initial intercept; stays fixed when ``fit_intercept=False``.
    fit_intercept : bool, default True
        Learn ``b``; when False, ``b`` stays at ``b0``.
    loss : {"mse", "half_mse"}, default "mse"
        ``mean(r**2)`` or ``0.5 * mean(r**2)``.
    shuffle : bool, default True
        Visit the samples in a random order, ``rng.permutation(n)`` drawn
        afresh every epoch from ``rng = numpy.random.default_rng(seed)``.
        False visits 0..n-1 every epoch.
    seed : int, SeedSequence, Generator or None, default None
        Seed of the shuffling (and of the validation split); same seed, same bits.
    backend : {"cython", "reference"}, default "cython"
        Compiled kernels, or the plain-Python reference path (same results to
        ``rtol=1e-9``).
    n_threads : int or None, default None
        Threads for the full-data gradient of ``method="batch"`` (None:
        OpenMP's default). Results are bit-for-bit the same for any value.
    momentum : float, default 0.0
        Momentum factor ``mu >= 0`` (PyTorch's convention): the buffer starts
        as the first gradient, ``v = g``; after that ``v = mu * v +
        (1 - dampening) * g``, and the step is ``lr * v``. (The compiled
        backend applies it as ``p - a * v_old - b * g`` with ``a``, ``b``
        formed once per step: the same step, rounded in another order,
        which shortens the per-sample dependency chain; it agrees with the
        reference backend to ``rtol=1e-9``.)
    nesterov : bool, default False
        Nesterov momentum: the step is ``lr * (g + mu * v)``. Needs
        ``momentum > 0`` and ``dampening = 0``.
    dampening : float, default 0.0
        In [0, 1]; see ``momentum``.
    weight_decay : float, default 0.0
        L2 penalty ``weight_decay / 2 * |w|^2``: adds ``weight_decay * w`` to
        the gradient. The intercept is not decayed unless ``decay_bias``.
    l1 : float, default 0.0
        L1 penalty ``l1 * |w|_1``: adds ``l1 * sign(w)`` (a subgradient,
        ``sign(0) = 0``). With ``weight_decay`` too: elastic net.
    decay_bias : bool, default False
        Apply the penalties to the intercept as well.
    schedule : str or gdcore.schedules.Schedule, default "constant"
        Learning-rate schedule; see :mod:`gdcore.schedules` for the formulas.
    average : bool or int, default False
        Averaged SGD: return the mean of the iterates after every step from
        global step ``average`` on (``True``: from the first step). Until
        that step is reached, the plain last iterate is returned.
    sample_weight : array-like of shape (n_samples,) or None
        Non-negative weights, divided by their mean over the training rows (a
        copy): a batch's loss is ``a * sum(s * r**2) / m``. Weight 0 drops a
        sample; multiplying all weights by a constant changes nothing; an
        integer weight k equals repeating the sample k times exactly for
        ``method="batch"`` (and in expectation otherwise).
    tol : float or None, default None
        Early stopping (None: off). With ``stop_on="loss"`` or
        ``"validation"``: stop after ``n_iter_no_change`` epochs in a row whose
        loss is not below ``best - tol``. With ``"grad_norm"``: stop when the
        epoch's gradient norm (``result.grad_norm``) is ``<= tol``.
    stop_on : {"loss", "grad_norm", "validation"}, default "loss"
    n_iter_no_change : int, default 5
    validation_fraction : float or None, default None
        Hold out this fraction of the rows (a seeded random subset, at least
        one row) and record their loss after each epoch in
        ``result.val_loss``; the rest is trained on. Defaults to 0.1 when
        ``stop_on="validation"``.
    on_divergence : {"raise", "stop", "halve"}, default "raise"
        When a loss or the parameters stop being finite (checked at every
        update): raise :class:`DivergenceError`; stop and return the last
        finite parameters (``stop_reason="diverged"``); or halve the learning
        rate and rerun the epoch from its start (with a ``RuntimeWarning``; up
        to 30 times, then raise). Halving cannot help when the loss at the
        start of the epoch is already non-finite (typical of full-batch runs
        that grew for many epochs); then it raises at once.
    check_lr : bool, default False
        Estimate the largest stable full-batch rate (:func:`max_stable_lr`, a
        few passes over X) and warn if ``lr`` is above it. The estimate is for
        the unweighted loss over all rows (sample weights and a validation
        split are not taken into account).
    callback : callable or None
        Called after each epoch (and every ``callback_every`` steps) with a
        dict: ``epoch``, ``step`` (None at an epoch's end), ``global_step``,
        ``w``, ``b``, ``loss`` (the epoch's, or None mid-epoch), ``history``.
        Returning ``True`` stops training (``stop_reason="callback"``).
    callback_every : int or None
    verbose : int, default 0
        1: print a line per epoch (loss, gradient norm, rate, samples/s).
    progress : bool, default False
        Show a tqdm progress bar (needs tqdm).
    copy : bool, default True
        False: raise ``ValueError`` instead of converting ``X`` or ``y`` when
        they are not already float64 C-contiguous arrays (so a large array is
        never silently copied). ``result.copied`` says what was converted.
    shuffle_block : int, "auto" or None, default "auto"
        Shuffle in blocks of this many consecutive rows: the blocks are
        visited in a random order, and the rows within each block in a random
        order, so a memory-mapped ``X`` is read from disk one contiguous
        stretch at a time. ``"auto"``: blocks of about 64 MiB of ``X`` when
        ``X`` is a ``numpy.memmap`` (or a view of one, as
        ``np.load(..., mmap_mode="r")`` gives), a full permutation otherwise.
        None: always a full permutation.
    warm_start : FitResult, TrainState or None
        Continue from a previous run's state: ``epochs`` more epochs, exactly
        as if the run had not stopped (rng, schedule, momentum, averaging
        included). The other options should be those of the first run. A
        run that stopped in the middle of an epoch (a callback, or
        ``on_divergence="stop"``) continues with a whole new epoch from the
        parameters it stopped at.

    Returns
    -------
    FitResult

    Raises
    ------
    TypeError, ValueError
        Bad inputs: raised before any training, except that a non-finite value
        in ``X`` or ``y`` is found when it first makes a loss non-finite;
        either way nothing passed in is modified.
    DivergenceError
        The loss or the parameters stopped being finite (learning rate too
        large) and ``on_divergence="raise"``. The error carries the last
        finite parameters, the epoch and step, and the history so far.
    """
    copy = _validation.check_bool(copy, "copy")
    copied = tuple(name for name, value in (("X", X), ("y", y))
                   if not _validation.is_float64_c(value))
    if not copy:
        _validation.refuse_copy(X, "X")
        _validation.refuse_copy(y, "y")
    memory_mapped = _is_memory_mapped(X)
    X, y = _validation.check_X_y(X, y)
    n_samples, n_features = X.shape
    outputs = _validation.n_outputs(y)
    method = _validation.check_choice(method, "method", _validation.METHODS)
    batch_size = _validation.check_int(batch_size, "batch_size", minimum=1)
    lr = _validation.check_real(lr, "lr", positive=True)
    epochs = _validation.check_int(epochs, "epochs", minimum=0, maximum=sys.maxsize)
    b0 = _validation.check_intercept(b0, "b0", outputs)
    fit_intercept = _validation.check_bool(fit_intercept, "fit_intercept")
    loss_factor = _validation.check_loss(loss)
    shuffle = _validation.check_bool(shuffle, "shuffle")
    seed = _validation.check_seed(seed)
    _validation.check_choice(backend, "backend", _validation.BACKENDS)
    n_threads = _validation.check_n_threads(n_threads)
    momentum = _validation.check_non_negative(momentum, "momentum")
    nesterov = _validation.check_bool(nesterov, "nesterov")
    dampening = _validation.check_real(dampening, "dampening")
    if not 0.0 <= dampening <= 1.0:
        raise ValueError(f"dampening must be in [0, 1]; got {dampening}")
    if nesterov and (momentum == 0.0 or dampening != 0.0):
        raise ValueError(f"nesterov=True needs momentum > 0 and dampening = 0; got "
                         f"momentum={momentum}, dampening={dampening}")
    weight_decay = _validation.check_non_negative(weight_decay, "weight_decay")
    l1 = _validation.check_non_negative(l1, "l1")
    decay_bias = _validation.check_bool(decay_bias, "decay_bias")
    schedule = schedules.check_schedule(schedule)
    average_from = _validation.check_average(average)
    if tol is not None:
        tol = _validation.check_non_negative(tol, "tol")
    stop_on = _validation.check_choice(stop_on, "stop_on", ("loss", "grad_norm", "validation"))
    n_iter_no_change = _validation.check_int(n_iter_no_change, "n_iter_no_change", minimum=1)
    if validation_fraction is None and stop_on == "validation":
        validation_fraction = 0.1
    if validation_fraction is not None:
        validation_fraction = _validation.check_real(validation_fraction,
                                                     "validation_fraction")
        if not 0.0 < validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1); got "
                             f"{validation_fraction}")
    on_divergence = _validation.check_choice(on_divergence, "on_divergence",
                                             ("raise", "stop", "halve"))
    check_lr = _validation.check_bool(check_lr, "check_lr")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None; got "
                        f"{_validation.describe(callback)}")
    if callback_every is not None:
        callback_every = _validation.check_int(callback_every, "callback_every", minimum=1)
    verbose = _validation.check_int(verbose, "verbose", minimum=0)
    progress = _validation.check_bool(progress, "progress")

    train_rows, val_rows = _split(n_samples, validation_fraction, seed)
    weights = _validation.check_sample_weight(sample_weight, n_samples, train_rows)
    if warm_start is None:
        w_init = (np.zeros((n_features,) if outputs is None else (n_features, outputs))
                  if w0 is None else _validation.check_weights(w0, n_features, "w0", outputs))
        params = np.concatenate([w_init.ravel(), np.ravel(b0)])
    elif w0 is not None or np.any(b0 != 0.0):
        raise ValueError("pass either w0 / b0 or warm_start, not both: a warm start "
                         "continues from its own parameters")
    n_train = n_samples if train_rows is None else train_rows.shape[0]
    if shuffle_block == "auto":
        shuffle_block = (max(1, MEMMAP_BLOCK_BYTES // (8 * n_features))
                         if memory_mapped else None)
    elif shuffle_block is not None:
        shuffle_block = _validation.check_int(shuffle_block, "shuffle_block", minimum=1)
    params_size = (n_features + 1) * (outputs or 1)
    config = _training.Config(
        method=method, lr=lr, epochs=epochs, loss_factor=loss_factor,
        batch_size={"batch": n_train, "sgd": 1}.get(method, min(batch_size, n_train)),
        fit_intercept=fit_intercept, shuffle=shuffle, n_threads=_threads(n_threads),
        schedule=schedule, momentum=momentum, dampening=dampening, nesterov=nesterov,
        weight_decay=weight_decay, l1=l1, decay_bias=decay_bias, average_from=average_from,
        tol=tol, stop_on=stop_on, n_iter_no_change=n_iter_no_change,
        on_divergence=on_divergence, callback=callback, callback_every=callback_every,
        verbose=verbose, progress=progress, shuffle_block=shuffle_block)
    if warm_start is None:
        state = _training.new_state(params, config, seed)
    else:
        state = _training.resume_state(warm_start, config, params_size, seed)
    if check_lr:
        limit = max_stable_lr(X, loss=loss, fit_intercept=fit_intercept)
        if lr > limit:
            warnings.warn(f"lr={lr:g} is above the largest stable full-batch rate "
                          f"{limit:.4g} for this X (gdcore.max_stable_lr); training is "
                          f"likely to diverge: try lr <= {0.5 * limit:.3g}",
                          RuntimeWarning, stacklevel=2)
    data = _training.Data(X=X, y=y, weights=weights, train_rows=train_rows,
                          val_rows=val_rows)
    return _training.train(_ENGINES[backend], data, config, state, copied=copied)


#: Block size of the block-wise shuffle of memory-mapped data ("auto").
MEMMAP_BLOCK_BYTES = 64 * 2**20


def _is_memory_mapped(X: Any) -> bool:
    """True for a numpy.memmap or an array viewing one (np.load's mmap_mode)."""
    while isinstance(X, np.ndarray):
        if isinstance(X, np.memmap):
            return True
        X = X.base
    return isinstance(X, mmap.mmap)


def _split(n_samples: int, fraction: float | None,
           seed: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Sorted training and held-out row indices (None, None: no split)."""
    if fraction is None:
        return None, None
    n_val = max(1, int(round(fraction * n_samples)))
    if n_val >= n_samples:
        raise ValueError(f"validation_fraction={fraction} leaves no sample to train on "
                         f"with {n_samples} samples")
    if isinstance(seed, np.random.Generator):
        split_rng = seed.spawn(1)[0]
    else:
        # spawn() advances a SeedSequence: work on a copy, so the caller's seed
        # gives the same split every time
        root = (copy.deepcopy(seed) if isinstance(seed, np.random.SeedSequence)
                else np.random.SeedSequence(seed))
        split_rng = np.random.default_rng(root.spawn(1)[0])
    perm = split_rng.permutation(n_samples)
    return np.sort(perm[n_val:]).astype(np.intp), np.sort(perm[:n_val]).astype(np.intp)


def max_stable_lr(X: Any, *, loss: str = "mse", fit_intercept: bool = True,
                  iterations: int = 20, n_threads: int | None = None) -> float:
    """Largest learning rate for which full-batch gradient descent is stable.

    The loss is quadratic with Hessian ``H = (2a/n) A.T @ A``, ``A = [X, 1]``
    (just ``X`` without intercept) and ``a`` the loss factor; gradient descent
    converges iff ``lr < 2 / lambda_max(H)``. ``lambda_max`` is estimated by
    power iteration in the compiled core (one pass over ``X`` per iteration);
    the estimate approaches it from below, so the bound returned is, if
    anything, slightly optimistic.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
    loss : {"mse", "half_mse"}, default "mse"
    fit_intercept : bool, default True
    iterations : int, default 20
        Power iterations (passes over ``X``).
    n_threads : int or None, default None

    Returns
    -------
    float
        ``2 / lambda_max(H)`` (``inf`` when ``H`` is zero).
    """
    X = _validation.check_X(X)
    loss_factor = _validation.check_loss(loss)
    fit_intercept = _validation.check_bool(fit_intercept, "fit_intercept")
    iterations = _validation.check_int(iterations, "iterations", minimum=1)
    threads = _threads(_validation.check_n_threads(n_threads))
    n, d = X.shape
    # A seeded random start: a fixed one (all ones, say) can be orthogonal to
    # the top eigenvector and never find it.
    v = np.random.default_rng(0).standard_normal(d + 1)
    if not fit_intercept:
        v[d] = 0.0
    v /= np.linalg.norm(v)
    out = np.empty(d + 2)
    eigenvalue = 0.0
    for _ in range(iterations):
        _kernels.full_sums(X, None, None, v[:d], float(v[d]), out, threads)
        product = np.append(out[2:], out[1] if fit_intercept else 0.0) / n
        with np.errstate(over="ignore"):
            eigenvalue = float(np.linalg.norm(product))
        if not math.isfinite(eigenvalue):
            _validation.raise_if_nonfinite_input(X)
            raise ValueError("X is too large for the estimate: X.T @ X overflows float64 "
                             f"(max |X| = {float(np.abs(X).max()):.3g}); scale X down")
        if eigenvalue == 0.0:
            return math.inf      # X is all zeros (no intercept): any rate is stable
        v = product / eigenvalue
    return 2.0 / (2.0 * loss_factor * eigenvalue)
