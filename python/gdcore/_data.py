"""Synthetic regression problems."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _validation

#: Rows are generated in blocks of this many, each block from its own child of
#: the seed, so the data do not depend on how (or in what pieces) they are made.
BLOCK_ROWS = 65536


def make_regression(n_samples: int, n_features: int, *, noise: float = 0.0,
                    bias: float = 0.0,
                    seed: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random linear regression problem ``y = X @ w_true + bias + noise * e``.

    ``X`` and ``e`` have independent standard normal entries, and ``w_true``
    standard normal entries.

    Parameters
    ----------
    n_samples : int
        Number of rows, at least 1.
    n_features : int
        Number of columns, at least 1.
    noise : float, default 0.0
        Standard deviation of the Gaussian noise added to ``y``; >= 0.
    bias : float, default 0.0
        Intercept of the true model.
    seed : int, SeedSequence or None, default None
        Same seed, same data.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64, C-contiguous
    y : ndarray of shape (n_samples,)
    w_true : ndarray of shape (n_features,)
    """
    n_samples = _validation.check_int(n_samples, "n_samples", minimum=1)
    n_features = _validation.check_int(n_features, "n_features", minimum=1)
    noise = _validation.check_real(noise, "noise")
    if noise < 0:
        raise ValueError(f"noise must be >= 0 (a standard deviation); got {noise}")
    bias = _validation.check_real(bias, "bias")
    seed = _validation.check_seed(seed)
    if isinstance(seed, np.random.Generator):
        raise TypeError("seed must be an int, a SeedSequence or None; got a Generator "
                        "(make_regression derives one stream per block of rows)")
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)

    weights_seed, rows_seed = root.spawn(2)
    w_true = np.random.default_rng(weights_seed).standard_normal(n_features)
    X = np.empty((n_samples, n_features))
    y = np.empty(n_samples)
    n_blocks = -(-n_samples // BLOCK_ROWS)
    for block, block_seed in enumerate(rows_seed.spawn(n_blocks)):
        rows = slice(block * BLOCK_ROWS, min((block + 1) * BLOCK_ROWS, n_samples))
        rng = np.random.default_rng(block_seed)
        rng.standard_normal(out=X[rows])
        np.matmul(X[rows], w_true, out=y[rows])
        y[rows] += bias
        if noise > 0:
            y[rows] += noise * rng.standard_normal(y[rows].shape[0])
    return X, y, w_true
