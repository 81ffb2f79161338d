"""Loss landscapes and descent paths: what the pictures of gradient descent show.

:func:`loss_grid` evaluates the loss at many candidate parameter vectors at
once with a compiled kernel (``gdcore/landscape.pxi``) that streams ``X``
once per block of candidates; :func:`loss_surface` lays a one-weight
problem's ``(w, b)`` grid out for a contour plot. :func:`descent_path` runs
:func:`gdcore.fit` and keeps every step's parameters and batch loss: the path
drawn on a landscape, and the per-step loss curve. :func:`ewma` is the
exponentially weighted moving average that smooths a loss curve.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _options, _validation
from ._api import _threads, backend_named, fit
from ._state import split_params


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
        :func:`gdcore.reference.loss_values` (slow; small inputs).
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
    X, y = _validation.check_one_output(X, y, "loss_grid")
    W = _validation.check_candidates(W, X.shape[1])
    B = _validation.check_candidate_intercepts(b, W.shape[0])
    loss_factor = _options.loss_factor(loss)
    engine = backend_named(backend)
    n_threads = _validation.check_n_threads(n_threads)
    out = engine.loss_grid(X, y, W, B, loss_factor, _threads(n_threads))
    if not np.isfinite(out).all():
        _validation.raise_if_nonfinite_input(X, y)
    return out


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
    MemoryError
        The grid (``n_w * n_b`` candidates, 24 bytes each) does not fit in
        memory; raised at once, naming ``w_values`` and ``b_values``.
    """
    X, y = _validation.check_one_output(X, y, "loss_surface")
    if X.shape[1] != 1:
        raise ValueError(f"loss_surface draws one-weight problems: X must have one "
                         f"feature; got {X.shape[1]} (use loss_grid with one candidate "
                         f"vector per row)")
    ws = _validation.check_axis(w_values, "w_values")
    bs = _validation.check_axis(b_values, "b_values")
    n_w, n_b = ws.shape[0], bs.shape[0]
    # the candidates' weights and intercepts, and the loss at each
    with _validation.allocating(3 * 8 * n_w * n_b, f"w_values and b_values ({n_w:,} x "
                                f"{n_b:,} = {n_w * n_b:,} grid points)",
                                "the grid and its losses"):
        W = np.repeat(ws, n_b)
        B = np.tile(bs, n_w)
        values = loss_grid(X, y, W, B, loss=loss, backend=backend, n_threads=n_threads)
    return values.reshape(n_w, n_b)


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
        The smoothed values.

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
class DescentPath:  # numpydoc ignore=PR01
    """Every step of a gradient-descent run (see :func:`descent_path`).

    Attributes
    ----------
    w : ndarray of shape (n_steps + 1, n_features), or (n_steps + 1, n_features, k)
        ``w[0]`` the initial weights, ``w[t + 1]`` the weights after step ``t``
        (for a 2-D ``y`` of k columns, each a (n_features, k) matrix).
    b : ndarray of shape (n_steps + 1,), or (n_steps + 1, k)
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


def descent_path(X: Any, y: Any, **options: Any) -> DescentPath:
    """Train as :func:`gdcore.fit` does, keeping the parameters after every step.

    This is ``gdcore.fit(X, y, **options)`` with a callback after every step
    that records the parameters and the step's batch loss: the same sample
    order, batches, update rule and result (the end of the path is the
    result's last iterate, its history the result's). One Python call per
    step: meant for the small problems that pictures are made of.

    Parameters
    ----------
    X, y : array-like
        The data, as in :func:`gdcore.fit`.
    **options : dict
        Any keyword of :func:`gdcore.fit` except ``callback`` and
        ``callback_every``, which the recording uses. Same defaults.

    Returns
    -------
    DescentPath
        Parameters before and after every step, each step's batch loss, the
        per-epoch history.

    Raises
    ------
    TypeError, ValueError
        Bad inputs or options, as :func:`gdcore.fit`; ``callback`` or
        ``callback_every`` among the options.
    DivergenceError
        As :func:`gdcore.fit`: a step made the loss or the parameters
        non-finite; the error carries the last finite parameters, the epoch
        and step (counted within the epoch) and the history of the complete
        epochs.
    MemoryError
        The path of every step (``epochs`` times the steps of an epoch) would
        not fit in memory; raised before training, naming ``epochs``.
    """
    for name in options:
        if name not in _options.ALL:
            raise TypeError(f"descent_path got an unexpected keyword argument {name!r} "
                            f"(it takes the keywords of gdcore.fit)")
        if name in ("callback", "callback_every"):
            raise TypeError(f"descent_path records every step through fit's callback; "
                            f"it does not take {name}")
    _check_path_memory(X, y, options)
    steps: list[tuple[np.ndarray, Any, float]] = []

    def record(info: dict) -> None:
        steps.append((info["w"], info["b"], info["batch_loss"]))

    result = fit(X, y, callback=record, callback_every=1, **options)
    assert result.state is not None
    n_features, outputs = result.state.n_features, result.state.outputs
    start = options.get("warm_start")
    if start is not None:
        w_start, b_start = split_params(getattr(start, "state", start).params, n_features,
                                        outputs)
    else:
        w0 = options.get("w0")
        w_start = (np.zeros_like(result.w) if w0 is None
                   else np.asarray(w0, dtype=np.float64).reshape(result.w.shape))
        b0 = options.get("b0", 0.0)
        b_start = (float(b0) if outputs is None
                   else np.broadcast_to(np.asarray(b0, dtype=np.float64), (outputs,)).copy())
    return DescentPath(w=np.array([w_start] + [w for w, _, _ in steps], dtype=np.float64),
                       b=np.array([b_start] + [b for _, b, _ in steps], dtype=np.float64),
                       step_loss=np.array([loss for _, _, loss in steps], dtype=np.float64),
                       history=result.history, steps_per_epoch=result.steps_per_epoch,
                       batch_size=result.batch_size, method=result.method,
                       loss=options.get("loss", "mse"), backend=result.backend)


#: Bytes a recorded step takes beyond its parameters: the Python objects of
#: the record (tuple, array headers, floats).
_STEP_OVERHEAD = 400


def _check_path_memory(X: Any, y: Any, options: dict) -> None:
    """``MemoryError`` naming ``epochs`` when recording every step of the run
    could not fit in this machine's memory (checked before training; bad
    options and data are left to ``fit`` to report)."""
    try:
        config = _options.from_arguments(options)
        shape, targets = np.shape(X), np.shape(y)
    except (TypeError, ValueError):
        return
    if not shape or not targets or shape[0] == 0:
        return
    n = shape[0]
    n_params = ((shape[1] if len(shape) == 2 else 1) + 1) * (
        targets[1] if len(targets) == 2 else 1)
    batch = {"batch": n, "sgd": 1}.get(config.method, min(config.batch_size, n))
    n_steps = config.epochs * -(-n // batch)
    # each step's w and b while training, then all of them in one array
    _validation.check_memory((n_steps + 1) * (3 * 8 * n_params + _STEP_OVERHEAD),
                             f"epochs={config.epochs} ({n_steps:,} steps of "
                             f"{n_params:,} parameters)",
                             "the parameters of every step")
