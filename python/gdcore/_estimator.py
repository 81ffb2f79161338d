"""LinearRegressor: the scikit-learn style face of :func:`gdcore.fit`."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from . import _api, _validation
from ._results import not_fitted_error_class


class LinearRegressor:
    """Linear least-squares regression trained by gradient descent.

    The constructor only stores its arguments (scikit-learn convention); they
    are checked by :meth:`fit`, which calls :func:`gdcore.fit` with them — see
    there for their meaning. It follows scikit-learn's estimator API without
    depending on scikit-learn, and passes ``check_estimator`` (except
    ``check_fit1d``: a 1-D ``X`` is one feature here, by design).

    Parameters
    ----------
    method : {"batch", "sgd", "minibatch"}, default "minibatch"
        Samples per update: all (``"batch"``), one (``"sgd"``) or
        ``batch_size`` (``"minibatch"``).
    batch_size : int, default 32
        Samples per mini-batch (minibatch only).
    lr : float, default 0.01
        Learning rate.
    epochs : int, default 10
        Passes over the data.
    fit_intercept : bool, default True
        Learn the intercept b (else b stays at b0).
    loss : {"mse", "half_mse"}, default "mse"
        ``"mse"`` is ``mean(r**2)``, ``"half_mse"`` is ``0.5 * mean(r**2)``.
    shuffle : bool, default True
        Visit the samples in a fresh random order every epoch.
    seed : int, SeedSequence or None, default None
        Seed of the shuffling and of the validation split.
    backend : {"cython", "reference"}, default "cython"
        Compiled kernels, or the plain-Python reference path (small data only).
    n_threads : int or None, default None
        Threads of the full-data gradient (None: all cores).
    momentum : float, default 0.0
        Momentum factor (PyTorch's convention).
    nesterov : bool, default False
        Nesterov momentum.
    dampening : float, default 0.0
        Momentum dampening, in [0, 1].
    weight_decay : float, default 0.0
        L2 penalty ``weight_decay / 2 * |w|^2``.
    l1 : float, default 0.0
        L1 penalty ``l1 * |w|_1``.
    decay_bias : bool, default False
        Apply the penalties to the intercept too.
    schedule : str or gdcore.schedules.Schedule, default "constant"
        Learning-rate schedule (:mod:`gdcore.schedules`).
    average : bool or int, default False
        Averaged SGD: return the mean of the iterates (from that global step).
    tol : float or None, default None
        Early stopping tolerance (default: off).
    stop_on : {"loss", "grad_norm", "validation"}, default "loss"
        What early stopping watches.
    n_iter_no_change : int, default 5
        Epochs without improvement before stopping.
    validation_fraction : float or None, default None
        Hold out this fraction of the rows and record their loss.
    on_divergence : {"raise", "stop", "halve"}, default "raise"
        What to do when the loss blows up.
    check_lr : bool, default False
        Warn when lr is above the largest stable full-batch rate.
    verbose : int, default 0
        Print a line per epoch.
    progress : bool, default False
        Show a progress bar (needs tqdm).
    optimizer : str or gdcore.optimizers.Optimizer, default "sgd"
        Update rule (:mod:`gdcore.optimizers`).
    l1_method : {"subgradient", "proximal", "cumulative"}, default "subgradient"
        How ``l1`` is applied. Each parameter is as in :func:`gdcore.fit`.
    random_state : int, SeedSequence or None, default None
        ``seed`` under scikit-learn's name, so that its tooling
        (``check_estimator``, ``set_random_state``) can seed the model; set
        at most one of the two.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,), or (n_outputs, n_features)
        Learned weights; for a 2-D ``y``, one row per output (scikit-learn's
        layout; ``result_.w`` holds the (n_features, n_outputs) matrix).
    intercept_ : float, or ndarray of shape (n_outputs,)
        Learned intercept (0.0 when ``fit_intercept=False``).
    loss_curve_ : ndarray of shape (n_epochs,)
        Mean training loss of each epoch (see :class:`gdcore.FitResult`).
    n_iter_ : int
        Epochs run (over all :meth:`partial_fit` calls since the last
        :meth:`fit`).
    n_features_in_ : int
        Number of features seen by :meth:`fit`.
    result_ : FitResult
        The last run's full record (gradient norms, rates, stop reason, state).

    Examples
    --------
    >>> import gdcore
    >>> X, y, w_true = gdcore.make_regression(1000, 3, seed=0)
    >>> model = gdcore.LinearRegressor(method="batch", lr=0.2, epochs=200).fit(X, y)
    >>> round(model.score(X, y), 6)
    1.0
    """

    def __init__(self, method: str = "minibatch", batch_size: int = 32, lr: float = 0.01,
                 epochs: int = 10, fit_intercept: bool = True, loss: str = "mse",
                 shuffle: bool = True, seed: Any = None, backend: str = "cython",
                 n_threads: int | None = None, momentum: float = 0.0, nesterov: bool = False,
                 dampening: float = 0.0, weight_decay: float = 0.0, l1: float = 0.0,
                 decay_bias: bool = False, schedule: Any = "constant",
                 average: bool | int = False, tol: float | None = None,
                 stop_on: str = "loss", n_iter_no_change: int = 5,
                 validation_fraction: float | None = None, on_divergence: str = "raise",
                 check_lr: bool = False, verbose: int = 0, progress: bool = False,
                 optimizer: Any = "sgd", l1_method: str = "subgradient",
                 random_state: Any = None) -> None:
        # scikit-learn's convention: store the parameters as given, check
        # them in fit (gdcore.fit does, against the option table).
        vars(self).update((name, value) for name, value in locals().items()
                          if name != "self")

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [name for name in signature.parameters if name != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Get the constructor parameters (scikit-learn convention).

        Parameters
        ----------
        deep : bool, default True
            Accepted for scikit-learn; there are no nested estimators.

        Returns
        -------
        dict
            Each constructor parameter's name and value.
        """
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> LinearRegressor:
        """Set constructor parameters; unknown names raise ``ValueError``.

        Parameters
        ----------
        **params : dict
            Parameter names and their new values.

        Returns
        -------
        LinearRegressor
            ``self``.
        """
        valid = self._param_names()
        for name in params:
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for LinearRegressor; valid parameters "
                    f"are {', '.join(valid)}"
                )
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {name: p.default
                    for name, p in inspect.signature(type(self).__init__).parameters.items()
                    if name != "self"}
        changed = [f"{name}={value!r}" for name, value in self.get_params().items()
                   if value is not defaults[name] and value != defaults[name]]
        return f"LinearRegressor({', '.join(changed)})"

    def __sklearn_tags__(self):
        """Estimator tags for scikit-learn (imported only when scikit-learn asks)."""
        from sklearn.utils import InputTags, RegressorTags, Tags, TargetTags

        return Tags(estimator_type="regressor",
                    target_tags=TargetTags(required=True, multi_output=True),
                    regressor_tags=RegressorTags(), input_tags=InputTags())

    def _fit_options(self) -> dict[str, Any]:
        """The parameters as keywords of gdcore.fit."""
        options = self.get_params()
        random_state = options.pop("random_state")
        if random_state is not None:
            if options["seed"] is not None:
                raise ValueError(f"set seed or random_state, not both; got "
                                 f"seed={options['seed']!r}, random_state={random_state!r}")
            options["seed"] = random_state
        return options

    def _store(self, result) -> LinearRegressor:
        self.coef_ = result.w if result.w.ndim == 1 else result.w.T.copy()
        self.intercept_ = result.b
        self.n_features_in_ = result.w.shape[0]
        self.result_ = result
        return self

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LinearRegressor:
        """Train on ``X``, ``y`` from zero weights; returns ``self``.

        On error (bad input, or :class:`gdcore.DivergenceError`) the fitted
        attributes of an earlier fit are left as they were.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,) or None, default None
            Sample weights, as in :func:`gdcore.fit`.

        Returns
        -------
        LinearRegressor
            ``self``, fitted.
        """
        result = _api.fit(X, y, sample_weight=sample_weight, **self._fit_options())
        self.loss_curve_ = result.history
        self.n_iter_ = result.epochs_run
        return self._store(result)

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> LinearRegressor:
        """One more epoch over ``X``, ``y``, continuing from the current state.

        The first call starts from zero weights. Each call continues the
        optimiser state (step count, momentum, schedule, averaging, shuffling
        generator), so ``k`` calls on the same data give exactly the
        parameters of ``fit`` with ``epochs=k``; successive calls may pass
        different chunks of a stream (same number of features).

        Sample weights across calls: the first call that passes
        ``sample_weight`` fixes the normalisation (its weights are divided by
        their mean, as in :func:`gdcore.fit`), and every later call divides
        its weights by that same number -- not by its own mean. So a chunk's
        weight relative to the other chunks is kept: a chunk weighted 3
        after one weighted 1 counts three times as much, as with
        scikit-learn's raw weights (for equal weights the two conventions
        agree; gdcore only removes the common factor, so that weights of
        1e308 do not overflow). A call without ``sample_weight`` counts each
        of its samples as 1 in those units (a sample of average weight in the
        first weighted call). The scale is kept in
        ``result_.state.weight_scale`` and reset by :meth:`fit`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples (a chunk of the stream).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,) or None, default None
            Sample weights (see above).

        Returns
        -------
        LinearRegressor
            ``self``, trained one more epoch.
        """
        previous = getattr(self, "result_", None)
        if previous is not None:
            X = _validation.check_X(X)
            _validation.check_n_features(X, self.n_features_in_, "as in the previous fit")
        result = _api.fit(X, y, sample_weight=sample_weight, warm_start=previous,
                          **{**self._fit_options(), "epochs": 1})
        if previous is None:
            self.loss_curve_ = result.history
        else:
            self.loss_curve_ = np.concatenate([self.loss_curve_, result.history])
        self.n_iter_ = len(self.loss_curve_)
        return self._store(result)

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise not_fitted_error_class()(
                "this LinearRegressor is not fitted yet; call fit(X, y) first")

    def predict(self, X: Any) -> np.ndarray:
        """Predict ``X @ coef_.T + intercept_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predictions.
        """
        self._check_fitted()
        X_checked = _validation.check_X(X)
        _validation.check_n_features(X_checked, self.n_features_in_, "as in fit", X)
        return _api.predict(X_checked, self.coef_.T, self.intercept_)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Coefficient of determination R^2 of the predictions on ``X``, ``y``.

        ``1 - sum(s * (y - y_hat)**2) / sum(s * (y - mean_s(y))**2)`` with
        sample weights ``s`` (all 1 by default); when ``y`` is constant, 1.0
        for a perfect prediction and 0.0 otherwise (as scikit-learn's
        ``r2_score``). With several outputs, the mean of the outputs' R^2.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to predict.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Their true targets.
        sample_weight : array-like of shape (n_samples,) or None, default None
            Weights of the samples in the R^2 sums.

        Returns
        -------
        float
            R^2 (1.0 is a perfect prediction).
        """
        X, y = _validation.check_X_y(X, y)
        if not np.isfinite(y).all():
            _validation.raise_if_nonfinite_input(X, y)
        weights = np.ones(y.shape[0]) if sample_weight is None else \
            _validation.check_sample_weight(sample_weight, y.shape[0], None)[0]
        predictions = self.predict(X)
        if predictions.shape != y.shape:
            raise ValueError(f"y must have shape {predictions.shape} to match the fitted "
                             f"outputs; got {y.shape}")
        targets = y.reshape(y.shape[0], -1)
        residuals = (targets - predictions.reshape(targets.shape)).T
        scores = []
        for target, residual in zip(targets.T, residuals, strict=True):
            ss_res = float(weights @ residual**2)
            centred = target - np.average(target, weights=weights)
            ss_tot = float(weights @ centred**2)
            if ss_tot == 0.0:
                scores.append(1.0 if ss_res == 0.0 else 0.0)
            else:
                scores.append(1.0 - ss_res / ss_tot)
        return float(np.mean(scores))
