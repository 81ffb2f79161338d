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

#: bytes of X (as float64) per block of the statistics' pass: 1 MiB, so that
#: a block's deviations stay in cache while they are summed
BLOCK_BYTES = 1 << 20

#: a feature whose standard deviation is at most this fraction of its
#: centre's size (or exactly 0) is constant
CONSTANT_RELATIVE = 1e-13


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
    One pass over ``X`` in blocks of about ``BLOCK_BYTES``. Each block's sums
    are taken about its first row (so a feature with a large offset keeps its
    digits: no ``E[x^2] - E[x]^2`` about 0), and the blocks are combined with
    Chan, Golub and LeVeque's update of the mean (kept relative to the first
    row) and of the sum of squared deviations.
    """
    n_rows = X.shape[0] if rows is None else rows.shape[0]
    d = X.shape[1]
    step = max(1, BLOCK_BYTES // (8 * d))
    total = 0.0
    shift: np.ndarray | None = None     # the first row: the mean is kept relative to it
    mean = np.zeros(d)                  # the mean so far, minus shift
    squares = np.zeros(d)               # the sum of weighted squared deviations
    for start in range(0, n_rows, step):
        stop = min(start + step, n_rows)
        block = X[start:stop] if rows is None else X[rows[start:stop]]
        if weights is None:
            w_block = None
            block_total = float(stop - start)
        else:
            w_block = weights[start:stop] if rows is None else weights[rows[start:stop]]
            block_total = float(w_block.sum())
            if block_total == 0.0:
                continue
        origin = np.asarray(block[0], dtype=np.float64)
        if shift is None:
            shift = origin
        deviations = np.subtract(block, origin, dtype=np.float64)
        if w_block is None:
            sums = deviations.sum(axis=0)
            sums_sq = np.einsum("ij,ij->j", deviations, deviations)
        else:
            sums = w_block @ deviations
            sums_sq = np.einsum("i,ij,ij->j", w_block, deviations, deviations)
        offset = sums / block_total
        block_squares = sums_sq - sums * offset
        merged = total + block_total
        delta = ((origin - shift) + offset) - mean
        mean += delta * (block_total / merged)
        squares += block_squares + delta * delta * (total * block_total / merged)
        total = merged
    if shift is None:
        raise ValueError("sample_weight is 0 on every training row: nothing to "
                         "standardize with")
    mean = shift + mean
    scale = np.sqrt(np.maximum(squares, 0.0) / total)
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
