"""LinearRegressor: the scikit-learn style face of :func:`gdcore.fit`.

scikit-learn is not a dependency of gdcore. When it is installed, the
estimator inherits from its ``RegressorMixin`` and ``BaseEstimator`` (so its
tooling recognises it: tags, HTML repr, ``clone``); importing this module then
imports ``sklearn.base``, which is why ``gdcore`` imports it only when
``gdcore.LinearRegressor`` is first used. Without scikit-learn, the estimator
implements the same API itself.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np

from . import _api, _validation
from ._results import ConvergenceWarning, not_fitted_error_class

try:
    from sklearn.base import BaseEstimator as _Base
    from sklearn.base import RegressorMixin as _Mixin
except ImportError:
    class _Mixin:  # type: ignore[no-redef]
        """Stands in for scikit-learn's ``RegressorMixin`` when it is not installed."""

    class _Base:  # type: ignore[no-redef]
        """Stands in for scikit-learn's ``BaseEstimator`` when it is not installed."""


class LinearRegressor(_Mixin, _Base):
    """Linear least-squares regression trained by gradient descent.

    The constructor only stores its arguments (scikit-learn convention); they
    are checked by :meth:`fit`, which calls :func:`gdcore.fit` with them — see
    there for their meaning. It follows scikit-learn's conventions, all of
    them, and passes its ``check_estimator`` completely: ``X`` must be 2-D
    (a 1-D ``X`` is refused, as scikit-learn's estimators refuse it, although
    :func:`gdcore.fit` takes it as one feature); pandas DataFrames set
    ``feature_names_in_`` and later calls refuse other or reordered columns;
    object arrays of numbers and pandas' nullable dtypes are converted, a
    missing value refused naming ``X``. When scikit-learn is installed it
    inherits from its ``RegressorMixin`` and ``BaseEstimator``; scikit-learn
    is not a dependency.

    Parameters
    ----------
    method : {"batch", "sgd", "minibatch"}, default "minibatch"
    batch_size : int, default 32
    lr : float or "auto", default 0.01
    epochs : int, default 10
    fit_intercept : bool, default True
    loss : {"mse", "half_mse"}, default "mse"
    shuffle : bool, default True
    seed : int, SeedSequence or None, default None
    backend : {"cython", "reference"}, default "cython"
    n_threads : int or None, default None
    momentum : float, default 0.0
    nesterov : bool, default False
    dampening : float, default 0.0
    weight_decay : float, default 0.0
    l1 : float, default 0.0
    decay_bias : bool, default False
    schedule : str or gdcore.schedules.Schedule, default "constant"
    average : bool or int, default False
    tol : float or None, default None
    stop_on : {"loss", "grad_norm", "validation"}, default "loss"
    n_iter_no_change : int, default 5
    validation_fraction : float or None, default None
    on_divergence : {"raise", "stop", "halve"}, default "raise"
    check_lr : bool, default False
    verbose : int, default 0
    progress : bool, default False
    optimizer : str or gdcore.optimizers.Optimizer, default "sgd"
    l1_method : {"subgradient", "proximal", "cumulative"}, default "subgradient"
    standardize : bool, default False
    restore_best : bool, default False
        Each as in :func:`gdcore.fit`. (``standardize`` stays off by default,
        as scikit-learn's estimators leave scaling to a pipeline; with
        ``standardize=True`` the coefficients are still in the units of
        ``X``.)
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
    loss_curve_ : ndarray of shape (n_iter_,)
        Mean training loss of each epoch (see :class:`gdcore.FitResult`).
    n_iter_ : int
        Epochs run (over all :meth:`partial_fit` calls since the last
        :meth:`fit`).
    n_features_in_ : int
        Number of features seen by :meth:`fit`.
    feature_names_in_ : ndarray of shape (n_features_in_,), dtype object
        The column names of the DataFrame :meth:`fit` was given (only when it
        was given one whose column names are all strings).
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

    def __init__(self, method: str = "minibatch", batch_size: int = 32,
                 lr: float | str = 0.01,
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
                 standardize: bool = False, restore_best: bool = False,
                 random_state: Any = None) -> None:
        # scikit-learn's convention: store the parameters as given, check
        # them in fit (gdcore.fit does, against the option table).
        self.__dict__.update((name, value) for name, value in locals().items()
                          if name != "self")

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [name for name in signature.parameters if name != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters as a dict (scikit-learn convention)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> LinearRegressor:
        """Set constructor parameters; unknown names raise ``ValueError``."""
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
        """Estimator tags for scikit-learn: a regressor that takes several outputs."""
        parent = getattr(super(), "__sklearn_tags__", None)
        if parent is not None:
            tags = parent()
        else:             # scikit-learn installed after this module was imported
            from sklearn.utils import InputTags, RegressorTags, Tags, TargetTags

            tags = Tags(estimator_type="regressor", target_tags=TargetTags(required=True),
                        regressor_tags=RegressorTags(), input_tags=InputTags())
        tags.target_tags.multi_output = True
        return tags

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

    def _store(self, result, names: np.ndarray | None) -> LinearRegressor:
        self.coef_ = result.w if result.w.ndim == 1 else result.w.T.copy()
        self.intercept_ = result.b
        self.n_features_in_ = result.w.shape[0]
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.result_ = result
        return self

    def _check_X(self, X: Any, *, fitting: bool) -> tuple[Any, np.ndarray | None]:
        """scikit-learn's rules for ``X`` before any work: 2-D, and, once
        fitted (``fitting`` False), the column names of the fit. Returns
        ``X`` (an array-like without ``ndim``, a list say, converted to an
        array) and its column names (None: it has none)."""
        names = _validation.feature_names(X)
        if getattr(X, "ndim", None) is None:
            X = _validation.as_float_array(X, "X")
        if X.ndim == 1:
            raise ValueError(
                f"X must be 2-D (n_samples, n_features) for LinearRegressor; got a 1-D "
                f"array of shape {np.shape(X)}. Reshape your data either using "
                f"X.reshape(-1, 1) if your data has a single feature or X.reshape(1, -1) "
                f"if it contains a single sample (gdcore.fit takes a 1-D X as one feature)")
        if not fitting:
            _validation.check_feature_names(getattr(self, "feature_names_in_", None), names,
                                            type(self).__name__)
        return X, names

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LinearRegressor:
        """Train on ``X``, ``y`` from zero weights; returns ``self``.

        On error (bad input, or :class:`gdcore.DivergenceError`) the fitted
        attributes of an earlier fit are left as they were.
        """
        X, names = self._check_X(X, fitting=True)
        result = _api.fit(X, y, sample_weight=sample_weight, **self._fit_options())
        self.loss_curve_ = result.history
        self.n_iter_ = result.epochs_run
        return self._store(result, names)

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
        """
        previous = getattr(self, "result_", None)
        X, names = self._check_X(X, fitting=previous is None)
        if previous is not None:
            X = _validation.check_X(X)
            _validation.check_n_features(X, self.n_features_in_, "as in the previous fit")
        with warnings.catch_warnings():
            # one epoch per call by design: running out of epochs is no news
            warnings.simplefilter("ignore", ConvergenceWarning)
            result = _api.fit(X, y, sample_weight=sample_weight, warm_start=previous,
                              **{**self._fit_options(), "epochs": 1})
        if previous is None:
            self.loss_curve_ = result.history
        else:
            self.loss_curve_ = np.concatenate([self.loss_curve_, result.history])
        self.n_iter_ = len(self.loss_curve_)
        return self._store(result, names if previous is None else
                           getattr(self, "feature_names_in_", None))

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise not_fitted_error_class()(
                "this LinearRegressor is not fitted yet; call fit(X, y) first")

    def _checked_X(self, X: Any) -> np.ndarray:
        """``X`` for a fitted model: 2-D, its columns those of the fit."""
        self._check_fitted()
        X, _ = self._check_X(X, fitting=False)
        X_checked = _validation.check_X(X)
        _validation.check_n_features(X_checked, self.n_features_in_, "as in fit", X)
        return X_checked

    def predict(self, X: Any) -> np.ndarray:
        """Predictions ``X @ coef_ + intercept_``, shape (n_samples,) (or
        (n_samples, n_outputs)).

        ``X`` must be 2-D with the features of :meth:`fit`; when the model was
        fitted on a DataFrame, a DataFrame with other columns, or the same in
        another order, is refused (``ValueError``) rather than silently
        predicted with the wrong weights.
        """
        return _api.predict(self._checked_X(X), self.coef_.T, self.intercept_)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Coefficient of determination R^2 of the predictions on ``X``, ``y``.

        ``1 - sum(s * (y - y_hat)**2) / sum(s * (y - mean_s(y))**2)`` with
        sample weights ``s`` (all 1 by default); when ``y`` is constant, 1.0
        for a perfect prediction and 0.0 otherwise (as scikit-learn's
        ``r2_score``). With several outputs, the mean of the outputs' R^2.
        """
        X, y = _validation.check_X_y(self._checked_X(X), y)
        if not np.isfinite(y).all():
            _validation.raise_if_nonfinite_input(X, y)
        weights = np.ones(y.shape[0]) if sample_weight is None else \
            _validation.check_sample_weight(sample_weight, y.shape[0], None)[0]
        predictions = _api.predict(X, self.coef_.T, self.intercept_)
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
