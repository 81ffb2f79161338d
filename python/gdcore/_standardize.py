"""Standardizing on the fly: the features' centres and scales, and the map
between the parameters of the standardized problem and those of ``X``.

With ``fit(..., standardize=True)`` training runs on ``z = (x - centre) /
scale`` per feature, without a standardized copy of ``X``: the backends form
each row of ``z`` as they read it (the kernels in a scratch row, the
reference backend as its textbook rows). The parameters the update rule, the
penalties and the optimizer's buffers act on are those of the standardized
problem, ``v`` and ``c`` with ``y ~ z @ v + c``; since ``z @ v + c = x @ (v /
scale) + (c - centre @ (v / scale))``, the same model in the units of ``X``
is ``w = v / scale``, ``b = c - centre @ w``. Every number gdcore reports
(``w``, ``b``, losses, predictions) is in those units.

The centres and scales are the weighted mean and standard deviation (the
``1/n`` kind) of each feature over the training rows, from one pass over
``X`` in blocks (a memory-mapped ``X`` is read once, never copied). A
constant feature (standard deviation 0, or below 1e-13 of its mean's size)
has scale 1 and its standardized column is all zeros: its weight stays 0 and
its value goes into the intercept.
"""

from __future__ import annotations

import numpy as np

#: rows of X per block of the statistics' pass (about 8 MiB at d = 128)
BLOCK_BYTES = 1 << 23

#: a feature whose standard deviation is at most this fraction of its
#: centre's size (or exactly 0) is constant
CONSTANT_RELATIVE = 1e-13


def _blocks(n_rows: int, n_features: int) -> range:
    """Starts of the blocks of rows of the statistics' pass."""
    return range(0, n_rows, max(1, BLOCK_BYTES // (8 * n_features)))


def feature_scales(X: np.ndarray, weights: np.ndarray | None,
                   rows: np.ndarray | None) -> np.ndarray:
    """The ``(2, d)`` array the backends standardize with: the centres, then
    ``1 / scale`` (0 for a constant feature).

    Parameters
    ----------
    X : ndarray of shape (n, d)
    weights : ndarray of shape (n,) or None
        Sample weights (non-negative, not all 0 over ``rows``).
    rows : ndarray of int or None
        The training rows (None: all).

    Notes
    -----
    Blocks are combined with Chan, Golub and LeVeque's update of the mean and
    of the sum of squared deviations, so a feature with a large offset keeps
    its digits (no ``E[x^2] - E[x]^2``).
    """
    n_rows = X.shape[0] if rows is None else rows.shape[0]
    d = X.shape[1]
    total = 0.0
    shift = None                    # the first block's mean: the rest is added to it
    mean = np.zeros(d)              # the mean so far, relative to shift
    squares = np.zeros(d)           # the sum of weighted squared deviations
    for start in _blocks(n_rows, d):
        stop = min(start + max(1, BLOCK_BYTES // (8 * d)), n_rows)
        block = np.asarray(X[start:stop] if rows is None else X[rows[start:stop]],
                           dtype=np.float64)
        if weights is None:
            w_block = None
            block_total = float(stop - start)
        else:
            w_block = weights[start:stop] if rows is None else weights[rows[start:stop]]
            block_total = float(w_block.sum())
        if block_total == 0.0:
            continue
        if shift is None:
            shift = np.average(block, axis=0, weights=w_block)
        deviations = np.subtract(block, shift)
        block_mean = np.average(deviations, axis=0, weights=w_block)
        deviations -= block_mean
        deviations *= deviations
        block_squares = (deviations.sum(axis=0) if w_block is None
                         else w_block @ deviations)
        merged = total + block_total
        delta = block_mean - mean
        mean += delta * (block_total / merged)
        squares += block_squares + delta * delta * (total * block_total / merged)
        total = merged
    assert shift is not None, "the weights of the training rows are not all 0"
    mean = shift + mean
    scale = np.sqrt(squares / total)
    constant = scale <= CONSTANT_RELATIVE * np.abs(mean)
    constant |= scale == 0.0
    inv_scale = np.where(constant, 0.0, 1.0 / np.where(constant, 1.0, scale))
    return np.vstack([mean, inv_scale])


def to_data_units(params: np.ndarray, standardize: np.ndarray, n_features: int) -> np.ndarray:
    """Parameters of the standardized problem (flat, by output) as the same
    model in the units of ``X``: ``w = v / scale``, ``b = c - centre @ w``."""
    d = n_features
    k = params.shape[0] // (d + 1)
    center, inv_scale = standardize
    W = params[:d * k].reshape(k, d) * inv_scale
    b = params[d * k:] - W @ center
    return np.concatenate([W.ravel(), b])


def from_data_units(params: np.ndarray, standardize: np.ndarray,
                    n_features: int) -> np.ndarray:
    """The inverse of :func:`to_data_units`: ``v = w * scale``, ``c = b +
    centre @ w`` (a constant feature's weight is dropped: its ``v`` is 0 and
    its part of the model moves into ``c``)."""
    d = n_features
    k = params.shape[0] // (d + 1)
    center, inv_scale = standardize
    W = params[:d * k].reshape(k, d)
    c = params[d * k:] + W @ center
    constant = inv_scale == 0.0
    V = W / np.where(constant, 1.0, inv_scale)
    V[:, constant] = 0.0
    return np.concatenate([V.ravel(), c])
