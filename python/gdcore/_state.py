"""What a training run works on: its data, and where it stands.

:class:`Data` holds the validated arrays of a run; :class:`TrainState` the
parameters, the optimiser's buffers and the counters -- everything a later
run needs to continue exactly where this one stopped.

Layout of the parameters (and of every buffer beside them): one flat vector
*by output*, the layout the compiled kernels use: output ``c``'s ``d``
weights at ``c * d``, then the ``k`` intercepts at ``k * d``. For one output
that is simply ``w`` followed by ``b``. :meth:`Data.split` turns it into the
public ``w`` (``(d,)``, or ``(d, k)`` for ``k`` outputs) and ``b``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _standardize

#: The rows of :attr:`TrainState.buffers`, in order: the parameters, the sum
#: of the current epoch's step gradients (for the gradient norm), the
#: optimizer's buffers (the momentum buffer or Adam's first moment; the
#: squares of Adam, Adagrad and RMSprop; amsgrad's largest second moment or
#: centred RMSprop's mean gradient), the cumulative L1 penalty applied to each
#: parameter, and the running mean of the iterates (averaged SGD). The
#: compiled kernels number them the same way (``gdcore._kernels.STATE_ROWS``).
STATE_ROWS = ("params", "grad_sum", "velocity", "square_avg", "aux", "l1_applied",
              "average")
PARAMS, GRAD_SUM, VELOCITY, SQUARE_AVG, AUX, L1_APPLIED, AVERAGE = range(len(STATE_ROWS))


def to_params(w: np.ndarray, b: float | np.ndarray) -> np.ndarray:
    """The flat by-output parameter vector of ``w`` and ``b`` (a new array)."""
    return np.concatenate([np.asarray(w, dtype=np.float64).T.ravel(), np.ravel(b)])


def split_params(params: np.ndarray, n_features: int,
                 outputs: int | None) -> tuple[np.ndarray, float | np.ndarray]:
    """Copies of ``w`` and ``b`` out of a flat by-output parameter vector: a
    vector and a float for one output (``outputs`` None), else W of shape
    (n_features, k) and b of shape (k,)."""
    d = n_features
    if outputs is None:
        return params[:d].copy(), float(params[d])
    k = outputs
    return params[:d * k].reshape(k, d).T.copy(), params[d * k:].copy()


@dataclass
class Data:
    """The validated arrays a run trains on."""

    # (n, d) and (n,) or (n, k), float64 C-contiguous ndarrays; under
    # gdcore.dask, Dask arrays (only its trainer reads them)
    X: Any
    y: Any
    weights: np.ndarray | None = None          # normalised to mean 1 over train_rows
    train_rows: np.ndarray | None = None       # None: every row
    val_rows: np.ndarray | None = None         # held-out rows, or None
    # standardize=True: (2, d) centres and 1 / scales (see _standardize)
    standardize: np.ndarray | None = None

    @property
    def Y(self) -> np.ndarray:
        """``y`` as an (n, k) view (k = 1 for a 1-D ``y``)."""
        return self.y.reshape(self.y.shape[0], -1)

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def outputs(self) -> int | None:
        """None for a 1-D ``y`` (a vector ``w``, a float ``b``); k for (n, k)."""
        return None if self.y.ndim == 1 else int(self.y.shape[1])

    @property
    def n_train(self) -> int:
        return self.X.shape[0] if self.train_rows is None else self.train_rows.shape[0]

    def in_data_units(self, params: np.ndarray) -> np.ndarray:
        """The training parameters as the same model in the units of ``X``
        (themselves without standardization)."""
        if self.standardize is None:
            return params
        return _standardize.to_data_units(params, self.standardize, self.n_features)

    def split(self, params: np.ndarray) -> dict:
        """``{"w": ..., "b": ...}`` in the units of ``X``: :func:`split_params`
        of :meth:`in_data_units`."""
        w, b = split_params(self.in_data_units(params), self.n_features, self.outputs)
        return {"w": w, "b": b}


@dataclass
class TrainState:
    """Everything a run needs to continue exactly where it stopped.

    ``fit(..., warm_start=result)`` (or ``warm_start=result.state``) and
    ``LinearRegressor.partial_fit`` resume from it: 3 epochs and then 2 more
    give the same bits as 5 epochs in one call, schedules, momentum, averaging
    and shuffling included. Treat it as opaque; it is copied, never shared.

    Attributes
    ----------
    buffers : ndarray of shape (7, (n_features + 1) * k)
        The parameters and the buffers that travel with them, one row each
        (``STATE_ROWS``: params, grad_sum, velocity, square_avg, aux,
        l1_applied, average), laid out by
        output: output ``c``'s weights at ``c * n_features``, then the ``k``
        intercepts (``k = 1`` for a 1-D ``y``: ``w`` then ``b``).
    n_features : int
    outputs : int or None
        None for a 1-D ``y``; k for a 2-D ``y`` with k columns.
    global_step : int
        Updates applied since training began.
    epoch : int
        Epochs completed since training began.
    rng : numpy.random.Generator or None
        The shuffling generator.
    schedule_state : dict
        The schedule's own state (e.g. the plateau's rate and counters).
    lr_scale : float
        1, halved by ``on_divergence="halve"``.
    best_score : float
        Early stopping: best value of the monitored quantity so far.
    no_improvement : int
        Early stopping: epochs in a row without improvement.
    val_rows : ndarray or None
        The held-out rows of ``validation_fraction`` (sorted), drawn once and
        kept: a run that continues this one holds out the same rows.
    n_samples : int or None
        The number of rows the held-out rows were drawn from.
    weight_scale : tuple of float or None
        How sample weights are normalised in this run: ``(largest, mean)``,
        fixed by its first call with ``sample_weight`` (the largest training
        weight, and the mean of the weights divided by it); every later call
        divides its weights by ``largest`` and then by ``mean``, so the weights
        of different calls (``partial_fit`` chunks) keep their ratios. None:
        no call had weights yet.
    optimizer : str or None
        The name of the optimizer whose buffers these are (``"sgd"``,
        ``"adam"``, ...), set by the run's first call; a warm start with
        another optimizer is refused.
    l1_total : float
        ``l1_method="cumulative"``: the total L1 penalty ``u`` applied so far
        (the sum of ``lr * l1`` over the steps).
    standardize : ndarray of shape (2, n_features) or None
        ``standardize=True``: the features' centres and ``1 / scale``, fixed
        by the run's first call (later calls, such as ``partial_fit`` chunks,
        keep them); the buffers then hold the parameters of the standardized
        problem. None: no standardization.
    auto_lr : float or None
        ``lr="auto"``: the rate chosen by the run's first call (kept).
    best_epoch : int or None
        ``restore_best``: the epoch (0-based, counted since training began)
        whose monitored loss was the lowest so far; None before one.
    best_loss, best_val_loss : float
        ``restore_best``: the training loss and the held-out loss (NaN
        without a held-out split) of that epoch.
    best_params : ndarray or None
        ``restore_best``: what the run returned had it stopped after that
        epoch (the parameters, or their running mean with ``average``), in
        the layout of ``buffers``' rows. The state's own parameters go on
        from the last epoch, so a continued run is the run that never stopped.
    """

    buffers: np.ndarray
    n_features: int
    outputs: int | None
    global_step: int = 0
    epoch: int = 0
    rng: np.random.Generator | None = None
    schedule_state: dict | None = None
    lr_scale: float = 1.0
    best_score: float = float("inf")
    no_improvement: int = 0
    val_rows: np.ndarray | None = None
    n_samples: int | None = None
    weight_scale: tuple[float, float] | None = None
    optimizer: str | None = None
    l1_total: float = 0.0
    standardize: np.ndarray | None = None
    auto_lr: float | None = None
    best_epoch: int | None = None
    best_loss: float = float("nan")
    best_val_loss: float = float("nan")
    best_params: np.ndarray | None = None

    @classmethod
    def starting_at(cls, params: np.ndarray, n_features: int,
                    outputs: int | None) -> TrainState:
        """A state before the first epoch: ``params``, zero buffers, the average at
        ``params``."""
        buffers = np.zeros((len(STATE_ROWS), params.shape[0]))
        buffers[PARAMS] = params
        buffers[AVERAGE] = params
        return cls(buffers=buffers, n_features=n_features, outputs=outputs)

    @property
    def params(self) -> np.ndarray:
        """The parameters (a view of ``buffers``)."""
        return self.buffers[PARAMS]

    @property
    def velocity(self) -> np.ndarray:
        """The momentum buffer (a view of ``buffers``)."""
        return self.buffers[VELOCITY]

    @property
    def average(self) -> np.ndarray:
        """The running mean of the iterates (a view of ``buffers``)."""
        return self.buffers[AVERAGE]
