"""LinearRegressor: the scikit-learn style face of :func:`gdcore.fit`."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from . import _api, _validation


class LinearRegressor:
    """Linear least-squares regression trained by gradient descent.

    The constructor only stores its arguments (scikit-learn convention); they
    are checked by :meth:`fit`, which calls :func:`gdcore.fit`.

    Parameters
    ----------
    method : {"batch", "sgd", "minibatch"}, default "minibatch"
    batch_size : int, default 32
    lr : float, default 0.01
    epochs : int, default 10
    fit_intercept : bool, default True
    loss : {"mse", "half_mse"}, default "mse"
    shuffle : bool, default True
    seed : int, SeedSequence or None, default None
    backend : {"cython", "reference"}, default "cython"

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Learned weights.
    intercept_ : float
        Learned intercept (0.0 when ``fit_intercept=False``).
    loss_curve_ : ndarray of shape (n_iter_,)
        Mean training loss of each epoch (see :class:`gdcore.FitResult`).
    n_iter_ : int
        Epochs run.
    n_features_in_ : int
        Number of features seen by :meth:`fit`.

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
                 shuffle: bool = True, seed: Any = None, backend: str = "cython") -> None:
        self.method = method
        self.batch_size = batch_size
        self.lr = lr
        self.epochs = epochs
        self.fit_intercept = fit_intercept
        self.loss = loss
        self.shuffle = shuffle
        self.seed = seed
        self.backend = backend

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [name for name in signature.parameters if name != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters as a dict (scikit-learn convention)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> "LinearRegressor":
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

    def fit(self, X: Any, y: Any) -> "LinearRegressor":
        """Train on ``X``, ``y`` from zero weights; returns ``self``.

        On error (bad input, or :class:`gdcore.DivergenceError`) the fitted
        attributes of an earlier fit are left as they were.
        """
        result = _api.fit(
            X, y, method=self.method, batch_size=self.batch_size, lr=self.lr,
            epochs=self.epochs, fit_intercept=self.fit_intercept, loss=self.loss,
            shuffle=self.shuffle, seed=self.seed, backend=self.backend)
        self.coef_ = result.w
        self.intercept_ = result.b
        self.loss_curve_ = result.history
        self.n_iter_ = result.epochs_run
        self.n_features_in_ = result.w.shape[0]
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise AttributeError(
                "this LinearRegressor is not fitted yet; call fit(X, y) first")

    def predict(self, X: Any) -> np.ndarray:
        """Predictions ``X @ coef_ + intercept_``, shape (n_samples,)."""
        self._check_fitted()
        X = _validation.check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X must have {self.n_features_in_} feature(s), as in fit; got "
                f"{X.shape[1]}")
        return _api.predict(X, self.coef_, self.intercept_)

    def score(self, X: Any, y: Any) -> float:
        """Coefficient of determination R^2 of the predictions on ``X``, ``y``.

        ``1 - sum((y - y_hat)**2) / sum((y - mean(y))**2)``; when ``y`` is
        constant, 1.0 for a perfect prediction and 0.0 otherwise (as
        scikit-learn's ``r2_score``).
        """
        X, y = _validation.check_X_y(X, y)
        if not np.isfinite(y).all():
            _validation.raise_if_nonfinite_input(X, y)
        residual = y - self.predict(X)
        ss_res = float(residual @ residual)
        centred = y - y.mean()
        ss_tot = float(centred @ centred)
        if ss_tot == 0.0:
            return 1.0 if ss_res == 0.0 else 0.0
        return 1.0 - ss_res / ss_tot
