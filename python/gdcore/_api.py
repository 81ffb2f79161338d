"""The public functions: value_and_grad, predict, fit, max_stable_lr."""

from __future__ import annotations

import copy as _copy
import dataclasses
import math
import mmap
import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from . import _curvature, _dispatch, _options, _standardize, _validation, optimizers
from ._checkpoint import Checkpoint, fingerprint
from ._engines import BACKENDS, Backend
from ._results import FitResult
from ._state import AVERAGE, PARAMS, SQUARE_AVG, Data, TrainState, to_params
from ._training import train

#: Block size of the block-wise shuffle of memory-mapped data ("auto").
MEMMAP_BLOCK_BYTES = 64 * 2**20


def backend_named(name: Any) -> Backend:
    """The backend called ``name``; ``ImportError`` for ``cython`` without a build."""
    _validation.check_choice(name, "backend", _options.BACKENDS)
    if name == "cython":
        _dispatch.require()
    return BACKENDS[name]


def _threads(n_threads: int | None) -> int:
    return _dispatch.threads(n_threads)


def value_and_grad(X: Any, y: Any, w: Any, b: Any = 0.0, *, loss: str = "mse",
                   backend: str = "cython",
                   n_threads: int | None = None) -> tuple[float, np.ndarray, Any]:
    """Loss of the linear model on all samples and its gradient.

    One fused pass over the rows of ``X`` computes the residuals
    ``r = X @ w + b - y``, the loss and both gradients; no array of size
    ``n_samples`` is allocated.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
        Samples; 1-D means one feature. Used as is when float64 or float32
        and C-contiguous (read-only memmaps included), otherwise converted
        to float64 once.
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
        The loss ``L`` at ``w`` and ``b``.
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
    ImportError
        ``backend="cython"`` without the compiled kernels (see the README).
    """
    X, y = _validation.check_X_y(X, y, keep_float32=True)
    outputs = _validation.n_outputs(y)
    w = _validation.check_weights(w, X.shape[1], "w", outputs)
    b = _validation.check_intercept(b, "b", outputs)
    loss_factor = _options.loss_factor(loss)
    engine = backend_named(backend)
    n_threads = _validation.check_n_threads(n_threads)

    (n, d), k = X.shape, outputs or 1
    sums = engine.sums(X, y.reshape(n, k), to_params(w, b), _threads(n_threads))
    value = loss_factor * sums[0] / n
    if not math.isfinite(value):
        _validation.raise_if_nonfinite_input(X, y)
    scale = 2.0 * loss_factor / n
    with np.errstate(over="ignore", invalid="ignore"):    # finite inputs, huge w: inf
        grad_w = scale * sums[1 + k:].reshape(k, d).T
        grad_b = scale * sums[1:1 + k]
    if outputs is None:
        return float(value), grad_w[:, 0].copy(), float(grad_b[0])
    return float(value), grad_w.copy(), grad_b


def predict(X: Any, w: Any, b: Any = 0.0, *, backend: str = "cython") -> np.ndarray:
    """Predict ``X @ w + b`` with the linear model.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
        Samples; 1-D means one feature. A float32 ``X`` is multiplied in
        blocks of rows made float64 (no float64 copy of all of it).
    w : array-like of shape (n_features,), or (n_features, k) for k outputs
        Weights.
    b : float, or array-like of shape (k,) for k outputs, default 0.0
        Intercept.
    backend : {"cython", "reference"}, default "cython"
        NumPy's matrix product, or the plain-Python reference path.

    Returns
    -------
    ndarray of shape (n_samples,), or (n_samples, k)
        The predictions, one column per output for k outputs.

    Raises
    ------
    TypeError, ValueError
        Bad shapes or dtypes; non-finite values in ``X``, ``w`` or ``b``.
        When the inputs are finite but a prediction overflows, it is returned
        as ``inf``.
    """
    X = _validation.check_X(X, keep_float32=True)
    outputs = np.shape(w)[1] if np.ndim(w) == 2 else None
    w = _validation.check_weights(w, X.shape[1], "w", outputs)
    b = _validation.check_intercept(b, "b", outputs)
    _validation.check_choice(backend, "backend", _options.BACKENDS)
    predictions = BACKENDS[backend].predict(X, w, b)
    if not np.isfinite(predictions).all():
        _validation.raise_if_nonfinite_input(X)
    return predictions


def fit(X: Any, y: Any, *, method: str = "minibatch", batch_size: int = 32,
        lr: float | str = 0.01, epochs: int = 10, w0: Any = None, b0: Any = 0.0,
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
        shuffle_block: int | str | None = "auto", checkpoint: str | os.PathLike | None = None,
        checkpoint_seconds: float = 10.0, optimizer: Any = "sgd",
        l1_method: str = "subgradient", standardize: bool = False,
        restore_best: bool = False) -> FitResult:
    """Train ``y ~ X @ w + b`` by gradient descent on the squared error.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
        Samples; 1-D means one feature. A float64 or float32 C-contiguous
        array (a read-only memmap included) is used as is and never copied
        (float32 values are made doubles as they are read: the same bits as
        ``X.astype(numpy.float64)``); anything else is converted to float64
        once. Never modified.
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
    lr : float or "auto", default 0.01
        Learning rate, a positive finite number: ``w -= lr * dL/dw``.
        ``"auto"`` (``optimizer="sgd"`` only) picks it from the loss's
        curvature (of the standardized problem with ``standardize``, sample
        weights included): ``1 / L`` for ``method="batch"``, ``L`` the
        largest eigenvalue of the Hessian (exact up to 128 features, from
        one pass over ``X``; else by power iteration, 20 passes), and
        ``1 / (2 L(B))`` for batches of ``B < n`` samples, ``L(B)`` the
        expected smoothness of Gower et al. (2019), made of ``L`` and the
        largest single-sample curvature (``B = 1``: ``1 / (2 L_max)``, which
        cannot diverge); see ``gdcore._curvature``. The rate is chosen once
        per run (kept by warm starts) and recorded in ``result.lr``.
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
        Compiled kernels, or the plain-Python reference path
        (:mod:`gdcore.reference`; same results to ``rtol=1e-9``, slow).
    n_threads : int or None, default None
        Threads for the full-data gradient of ``method="batch"`` (None:
        OpenMP's default). With 2 or more, a shuffled run of many epochs on
        small data draws the next epochs' sample orders on a second thread
        while the current ones train, and an order of 65,536 rows or more is
        drawn by two threads. In a process forked after gdcore's threads
        started (``multiprocessing``'s "fork"), every pass runs on one
        thread: GNU OpenMP cannot start threads there. Results are
        bit-for-bit the same for any value.
    momentum : float, default 0.0
        Momentum factor ``mu >= 0`` (PyTorch's convention): the buffer starts
        as the first gradient, ``v = g``; after that ``v = mu * v +
        (1 - dampening) * g``, and the step is ``lr * v``. (The compiled
        backend applies it as ``p - a * v_old - b * g`` with ``a``, ``b``
        formed once per step: the same step, rounded in another order,
        which shortens the per-sample dependency chain; it agrees with the
        reference backend to ``rtol=1e-9``).
    nesterov : bool, default False
        Nesterov momentum: the step is ``lr * (g + mu * v)``. Needs
        ``momentum > 0`` and ``dampening = 0``.
    dampening : float, default 0.0
        In [0, 1]; see ``momentum``.
    weight_decay : float, default 0.0
        L2 penalty ``weight_decay / 2 * |w|^2``: adds ``weight_decay * w`` to
        the gradient. The intercept is not decayed unless ``decay_bias``.
    l1 : float, default 0.0
        L1 penalty ``l1 * |w|_1``, applied as ``l1_method`` says. With
        ``weight_decay`` too: elastic net.
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
        copy; computed from the weights divided by the largest, so that any
        finite weights, 1e308 included, are normalised without overflow): a
        batch's loss is ``a * sum(s * r**2) / m``. With ``warm_start`` from a
        run that had weights, they are divided by that run's number instead
        (``TrainState.weight_scale``), so the weights of successive calls keep
        their ratios. Weight 0 drops a
        sample; multiplying all weights by a constant changes nothing; an
        integer weight k equals repeating the sample k times exactly for
        ``method="batch"`` (and in expectation otherwise).
    tol : float or None, default None
        Early stopping (None: off). With ``stop_on="loss"`` or
        ``"validation"``: stop after ``n_iter_no_change`` epochs in a row whose
        loss is not below ``best - tol``. With ``"grad_norm"``: stop when the
        epoch's gradient norm (``result.grad_norm``) is ``<= tol``.
    stop_on : {"loss", "grad_norm", "validation"}, default "loss"
        What early stopping watches: the training loss, the gradient norm or
        the loss of the held-out rows (see ``tol``).
    n_iter_no_change : int, default 5
        Epochs without improvement before stopping (see ``tol``).
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
        Estimate the largest stable full-batch rate (as :func:`max_stable_lr`
        does, a few passes over X) and warn if ``lr`` is above it. The
        estimate is for the loss over all rows (a validation split is not
        taken into account), with the sample weights, and of the
        standardized problem with ``standardize=True``.
    callback : callable or None
        Called after each epoch (and every ``callback_every`` steps) with a
        dict: ``epoch``, ``step`` (None at an epoch's end), ``global_step``,
        ``w``, ``b``, ``loss`` (the epoch's, or None mid-epoch),
        ``batch_loss`` (the mean of the batch losses of the steps since the
        previous call), ``history``. Returning ``True`` stops training
        (``stop_reason="callback"``). The call after an epoch comes before
        the early-stopping check, so it sees every completed epoch.
    callback_every : int or None
        Also call ``callback`` after every ``callback_every`` steps within
        an epoch.
    verbose : int, default 0
        1: print a line per epoch (loss, gradient norm, rate, samples/s).
    progress : bool, default False
        Show a tqdm progress bar (needs tqdm).
    warm_start : FitResult, TrainState or None
        Continue from a previous run's state: ``epochs`` more epochs, exactly
        as if the run had not stopped (rng, schedule, momentum, averaging
        included). The other options should be those of the first run. A
        run that stopped in the middle of an epoch (a callback, or
        ``on_divergence="stop"``) continues with a whole new epoch from the
        parameters it stopped at.
    copy : bool, default True
        False: raise ``ValueError`` instead of converting ``X`` or ``y`` when
        they are not already float64 (``X``: or float32) C-contiguous arrays
        (so a large array is never silently copied). ``result.copied`` says what was converted.
    shuffle_block : int, "auto" or None, default "auto"
        Shuffle in blocks of this many consecutive rows: the blocks are
        visited in a random order, and the rows within each block in a random
        order, so a memory-mapped ``X`` is read from disk one contiguous
        stretch at a time. ``"auto"``: blocks of about 64 MiB of ``X`` when
        ``X`` is a ``numpy.memmap`` (or a view of one, as
        ``np.load(..., mmap_mode="r")`` gives), a full permutation otherwise.
        None: always a full permutation.
    checkpoint : str, os.PathLike or None, default None
        A file that makes the run survive a kill: the whole state of the run
        (parameters, optimiser buffers, generator, schedule, early stopping,
        held-out rows, history, and how far the current epoch got) is saved
        to it, atomically, at most every ``checkpoint_seconds`` and when the
        run ends. When the file exists at the start of a ``fit`` with the
        same options (``epochs``, ``n_threads``, ``verbose``, ``progress``,
        ``callback`` and ``check_lr`` may differ) and the same data, the run
        resumes from it and ends with the bits of a run that was never
        interrupted; a finished run's file gives its result at once. A
        checkpoint from other options or data raises ``ValueError`` naming
        ``checkpoint`` and is left as it is. Nothing is saved on Ctrl-C (the
        last periodic save stands).
    checkpoint_seconds : float, default 10.0
        Save the checkpoint at most this often (between slices of an epoch;
        an epoch runs in at least 16 slices when checkpointing).
    optimizer : str or gdcore.optimizers.Optimizer, default "sgd"
        The update rule: ``"sgd"``, ``"adam"``, ``"adamw"``, ``"adagrad"``,
        ``"rmsprop"`` (PyTorch's rules, in float64) or an object of
        :mod:`gdcore.optimizers` with other hyper-parameters
        (``Adam(betas=(0.9, 0.99), amsgrad=True)``); see that module for each
        update. ``momentum``, ``dampening`` and ``nesterov`` belong to
        ``"sgd"`` (``momentum`` also to ``"rmsprop"``); ``weight_decay`` is
        added to the gradient, except for ``"adamw"``, which shrinks the
        parameters by ``1 - lr * weight_decay`` before each step. The
        optimizer's buffers are part of the training state (warm starts and
        checkpoints continue them); a warm start with another optimizer is
        refused.
    l1_method : str, default "subgradient"
        How ``l1`` acts: ``"subgradient"`` adds ``l1 * sign(w)`` to the
        gradient (``sign(0) = 0``; weights hover around 0 rather than reach
        it); ``"proximal"`` soft-thresholds after each step, ``w = sign(w) *
        max(|w| - lr * l1, 0)`` (with ``method="batch"`` this is ISTA, which
        converges to the exact lasso / elastic-net minimiser, with exact
        zeros); ``"cumulative"`` is the cumulative penalty of Tsuruoka,
        Tsujii and Ananiadou (2009) that scikit-learn's ``SGDRegressor``
        uses (exact zeros; with ``loss="half_mse"`` and ``l1`` =
        ``alpha * l1_ratio``, ``weight_decay`` = ``alpha * (1 - l1_ratio)``,
        the same trajectory as ``SGDRegressor(penalty="elasticnet")``).
    standardize : bool, default False
        Train on the standardized features ``z = (x - mean) / std`` (weighted
        mean and standard deviation of each feature over the training rows,
        from one pass over ``X`` in blocks) without a copy of ``X``: each row
        is standardized as it is read. Gradient descent on raw features whose
        scales differ is slow or diverges; on ``z`` one rate suits every
        feature (glmnet's default). The update rule, the penalties
        (``weight_decay``, ``l1``: on the standardized coefficients, as in
        glmnet) and the optimizer act on the standardized problem; ``w``,
        ``b``, the losses, callbacks and predictions are in the units of
        ``X``. A constant feature gets weight 0 (its value goes into the
        intercept). The means and deviations are fixed by a run's first call
        and kept by warm starts, ``partial_fit`` and checkpoints.
    restore_best : bool, default False
        Return the result of the best epoch rather than the last: the one
        whose monitored loss (``stop_on="loss"``: the epoch's training loss,
        ``history``; ``"validation"``: the held-out loss, ``val_loss``) was
        the lowest, the earliest of equals. ``w`` and ``b`` are what a run
        stopped after that epoch would have returned (the parameters at its
        end; their running mean with ``average``); ``result.best_epoch``,
        ``best_loss`` and ``best_val_loss`` record it. The best is kept in
        the training state, over every call of a run (warm starts,
        ``partial_fit``, checkpoints), while the state's own parameters go
        on from the last epoch, so continuing a run gives the bits of the
        run that never stopped. Needs ``stop_on`` "loss" or "validation";
        works with or without ``tol``.

    Returns
    -------
    FitResult
        The parameters, the history of the run and its state (for a warm start).

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
    return fit_with(dict(locals()))


def fit_with(arguments: Mapping[str, Any]) -> FitResult:
    """:func:`fit` with its arguments in a mapping (every keyword present).

    The options are checked by building their ``Config`` (the option table),
    then the data and the arguments that depend on it.
    """
    config = _options.from_arguments(arguments)
    engine = backend_named(config.backend)
    X, y = arguments["X"], arguments["y"]
    copied = tuple(name for name, value in (("X", X), ("y", y))
                   if not _validation.is_used_as_is(value, keep_float32=name == "X"))
    if not config.copy:
        _validation.refuse_copy(X, "X", keep_float32=True)
        _validation.refuse_copy(y, "y")
    memory_mapped = _is_memory_mapped(X)
    X, y = _validation.check_X_y(X, y, keep_float32=True)
    n_samples, n_features = X.shape
    outputs = _validation.n_outputs(y)
    state = start_state(config, arguments, n_features, outputs)
    checkpoint, saved = None, None
    if config.checkpoint is not None:
        checkpoint = Checkpoint(config.checkpoint, config.checkpoint_seconds, fingerprint(
            config, X, y, arguments["sample_weight"], state))
        saved = checkpoint.load()
        if saved is not None:
            state = saved.state
    train_rows, val_rows = _held_out(config, state, n_samples)
    # the weights' scale is fixed by a run's first call with weights and kept
    # in its state (partial_fit chunks keep their relative weights)
    weights, state.weight_scale = _validation.check_sample_weight(
        arguments["sample_weight"], n_samples, train_rows, state.weight_scale)
    n_train = n_samples if train_rows is None else train_rows.shape[0]
    shuffle_block = config.shuffle_block
    if shuffle_block == "auto":
        shuffle_block = (max(1, MEMMAP_BLOCK_BYTES // (X.itemsize * n_features))
                         if memory_mapped else None)
    config = dataclasses.replace(
        config, n_threads=_threads(config.n_threads), shuffle_block=shuffle_block,
        batch_size={"batch": n_train, "sgd": 1}.get(config.method,
                                                    min(config.batch_size, n_train)))
    default_start = (arguments["warm_start"] is None and arguments["w0"] is None
                     and not np.any(np.asarray(arguments["b0"]) != 0.0))
    standardize = _standardizing(config, state, X, y, weights, train_rows, default_start)
    if config.lr == "auto":
        if state.auto_lr is None:       # chosen once per run
            state.auto_lr = _auto_lr(engine, X, config, weights, standardize, train_rows,
                                     n_train)
        config = dataclasses.replace(config, lr=state.auto_lr)
    if not state.schedule_state:
        state.schedule_state = config.schedule.initial_state(config.rate)
    if config.check_lr:
        _check_lr(engine, X, config, weights, standardize)
    data = Data(X=X, y=y, weights=weights, train_rows=train_rows, val_rows=val_rows,
                standardize=standardize)
    return train(engine, data, config, state, copied=copied, checkpoint=checkpoint,
                 saved=saved)


def start_state(config: _options.Config, arguments: Mapping[str, Any], n_features: int,
                outputs: int | None) -> TrainState:
    """The state a run starts from: ``w0`` and ``b0`` (checked against the
    data), or a copy of ``warm_start``'s state; completed with what this
    run's options need (the shuffling generator, the schedule's state)."""
    b0 = _validation.check_intercept(arguments["b0"], "b0", outputs)
    w0, warm_start = arguments["w0"], arguments["warm_start"]
    if warm_start is None:
        w_init = (np.zeros((n_features,) if outputs is None else (n_features, outputs))
                  if w0 is None else _validation.check_weights(w0, n_features, "w0", outputs))
        state = TrainState.starting_at(to_params(w_init, b0), n_features, outputs)
    elif w0 is not None or np.any(b0 != 0.0):
        raise ValueError("pass either w0 / b0 or warm_start, not both: a warm start "
                         "continues from its own parameters")
    else:
        state = _copy.deepcopy(_validation.check_warm_start(warm_start, n_features,
                                                            outputs))
    optimizer = optimizers.name_of(config.optimizer)
    if state.optimizer is None:             # a run's first call
        state.optimizer = optimizer
        state.buffers[SQUARE_AVG] = config.optimizer.initial_square_avg()
    elif state.optimizer != optimizer:
        raise ValueError(f"warm_start was trained with optimizer={state.optimizer!r}; "
                         f"continuing it with optimizer={optimizer!r} would start the "
                         f"optimizer's buffers afresh in the middle of a run (start a "
                         f"new run from its parameters with w0 and b0 instead)")
    if config.shuffle and state.rng is None:
        state.rng = np.random.default_rng(config.seed)
    return state


def _standardizing(config: _options.Config, state: TrainState, X: np.ndarray,
                   y: np.ndarray, weights: np.ndarray | None, train_rows: np.ndarray | None,
                   default_start: bool) -> np.ndarray | None:
    """The run's ``(2, d)`` centres and ``1 / scale`` (None: not standardizing):
    a continued run's own, or, on a run's first call, computed from ``X`` (one
    pass), when the state's parameters are mapped to the standardized
    problem. From the default start (no ``w0``, ``b0`` or ``warm_start``)
    with an intercept, training starts from the best constant model, ``b =
    mean(y)`` (weighted, over the training rows): the same as centring ``y``."""
    if state.standardize is not None:
        if not config.standardize:
            raise ValueError("warm_start was trained with standardize=True; continue it "
                             "with standardize=True (or start a new run from its w and b "
                             "with w0 and b0)")
        return state.standardize
    if not config.standardize:
        return None
    if state.global_step > 0:
        raise ValueError("warm_start was trained without standardize; continue it without "
                         "(or start a new run from its w and b with w0 and b0)")
    scales = _standardize.feature_scales(X, weights, train_rows)
    if not np.all(np.isfinite(scales)):
        _validation.raise_if_nonfinite_input(X)
        raise ValueError("X is too large to standardize: its squared deviations overflow "
                         "float64; scale it down")
    d = X.shape[1]
    params = state.buffers[PARAMS].copy()
    if default_start and config.fit_intercept:
        targets, row_weights = y, weights
        if train_rows is not None:
            targets = y[train_rows]
            row_weights = None if weights is None else weights[train_rows]
        params[d * (params.shape[0] // (d + 1)):] = np.average(targets, axis=0,
                                                               weights=row_weights)
    state.buffers[PARAMS] = state.buffers[AVERAGE] = _standardize.from_data_units(
        params, scales, d)
    state.standardize = scales
    return scales


def _auto_lr(engine: Backend, X: np.ndarray, config: _options.Config,
             weights: np.ndarray | None, standardize: np.ndarray | None,
             train_rows: np.ndarray | None, n_train: int) -> float:
    """``lr="auto"`` for this run (see :mod:`gdcore._curvature`)."""
    if X.shape[1] <= _curvature.GRAM_FEATURES:
        full = _curvature.exact_largest_curvature(
            X, loss_factor=config.loss_factor, fit_intercept=config.fit_intercept,
            weights=weights, standardize=standardize)
    else:
        full = _curvature.largest_curvature(
            engine, X, loss_factor=config.loss_factor, fit_intercept=config.fit_intercept,
            n_threads=config.n_threads or 1, weights=weights,
            standardize=standardize)
    per_sample = 0.0
    if config.batch_size < n_train:
        per_sample = _curvature.largest_sample_curvature(
            X, loss_factor=config.loss_factor, fit_intercept=config.fit_intercept,
            weights=weights, standardize=standardize, rows=train_rows)
    if not (math.isfinite(full) and math.isfinite(per_sample)):
        _validation.raise_if_nonfinite_input(X)
        raise ValueError("X is too large for lr='auto': X.T @ X overflows float64 "
                         f"(max |X| = {float(np.abs(X).max()):.3g}); scale X down or use "
                         f"standardize=True")
    return _curvature.auto_lr(full, per_sample, config.batch_size, n_train)


def _check_lr(engine: Backend, X: np.ndarray, config: _options.Config,
              weights: np.ndarray | None, standardize: np.ndarray | None) -> None:
    """``check_lr``: warn when ``lr`` is above the largest stable full-batch rate."""
    curvature = _curvature.largest_curvature(
        engine, X, loss_factor=config.loss_factor, fit_intercept=config.fit_intercept,
        n_threads=config.n_threads or 1, weights=weights,
            standardize=standardize)
    if not math.isfinite(curvature):
        _validation.raise_if_nonfinite_input(X)
        return          # the run finds and reports the overflow itself
    limit = 2.0 / curvature if curvature > 0.0 else math.inf
    if config.rate > limit:
        warnings.warn(f"lr={config.rate:g} is above {limit:.4g}, the largest learning rate "
                      f"for which full-batch descent on this data is stable; training is "
                      f"likely to diverge: try lr <= {0.5 * limit:.3g}, or lr='auto' "
                      f"(--lr auto) to let gdcore choose", RuntimeWarning, stacklevel=4)


def _held_out(config: _options.Config, state: TrainState,
              n_samples: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The training and held-out rows of a run (None, None: no split).

    The held-out rows are part of the training state: drawn the first time a
    run asks for them and kept, so that a run continuing another (warm
    start, ``partial_fit``, a checkpoint) never trains on rows the other
    held out.
    """
    if config.validation_fraction is None:
        return None, None
    if state.val_rows is None:
        state.val_rows = _validation.held_out_rows(n_samples, config.validation_fraction,
                                                   config.seed)
        state.n_samples = n_samples
    elif state.n_samples != n_samples:
        raise ValueError(f"warm_start holds out rows of data with {state.n_samples} "
                         f"samples; this X has {n_samples} (continue on the same data, "
                         f"or without validation_fraction)")
    train = np.ones(n_samples, dtype=bool)
    train[state.val_rows] = False
    return np.flatnonzero(train).astype(np.intp), state.val_rows


def _is_memory_mapped(X: Any) -> bool:
    """True for a numpy.memmap or an array viewing one (np.load's mmap_mode)."""
    while isinstance(X, np.ndarray):
        if isinstance(X, np.memmap):
            return True
        X = X.base
    return isinstance(X, mmap.mmap)


def max_stable_lr(X: Any, *, loss: str = "mse", fit_intercept: bool = True,
                  iterations: int = 20, backend: str = "cython",
                  n_threads: int | None = None) -> float:
    """Largest learning rate for which full-batch gradient descent is stable.

    The loss is quadratic with Hessian ``H = (2a/n) A.T @ A``, ``A = [X, 1]``
    (just ``X`` without intercept) and ``a`` the loss factor; gradient descent
    converges iff ``lr < 2 / lambda_max(H)``. ``lambda_max`` is estimated by
    power iteration (one pass over ``X`` per iteration); the estimate
    approaches it from below, so the bound returned is, if anything, slightly
    optimistic.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or (n_samples,)
        Samples, as in :func:`fit`.
    loss : {"mse", "half_mse"}, default "mse"
        The loss, as in :func:`fit` (``half_mse`` halves the Hessian).
    fit_intercept : bool, default True
        Whether the intercept is trained (it adds a column of ones to ``X``).
    iterations : int, default 20
        Power iterations (passes over ``X``).
    backend : {"cython", "reference"}, default "cython"
        Compiled kernels, or the plain-Python reference path.
    n_threads : int or None, default None
        Threads of the compiled passes (None: OpenMP's default).

    Returns
    -------
    float
        ``2 / lambda_max(H)`` (``inf`` when ``H`` is zero).
    """
    X = _validation.check_X(X, keep_float32=True)
    loss_factor = _options.loss_factor(loss)
    fit_intercept = _validation.check_bool(fit_intercept, "fit_intercept")
    iterations = _validation.check_int(iterations, "iterations", minimum=1)
    engine = backend_named(backend)
    threads = _threads(_validation.check_n_threads(n_threads))
    curvature = _curvature.largest_curvature(engine, X, loss_factor=loss_factor,
                                             fit_intercept=fit_intercept, n_threads=threads,
                                             iterations=iterations)
    if not math.isfinite(curvature):
        _validation.raise_if_nonfinite_input(X)
        raise ValueError("X is too large for the estimate: X.T @ X overflows float64 "
                         f"(max |X| = {float(np.abs(X).max()):.3g}); scale X down")
    if curvature == 0.0:
        return math.inf      # X is all zeros (no intercept): any rate is stable
    return 2.0 / curvature
