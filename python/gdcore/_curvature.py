"""The curvature of the loss, and the learning rate ``lr="auto"`` made from it.

The loss ``a * mean(s * r**2)`` is quadratic in the parameters with Hessian
``H = (2a/n) A.T @ S @ A``, ``A = [X, 1]`` (``X`` alone without intercept;
the standardized rows with ``standardize=True``), ``S`` the sample weights.
Two numbers describe how large a step can be:

* ``L``, the largest eigenvalue of ``H``: full-batch descent is stable for
  ``lr < 2 / L`` and, for the quadratic, ``lr = 1 / L`` is the classic safe
  choice (it also keeps heavy-ball and Nesterov momentum stable, whose bound
  is ``2 (1 + momentum) / L``). Up to ``GRAM_FEATURES`` features it is the
  exact largest eigenvalue of ``A.T @ S @ A / n``, formed in one pass over
  ``X`` in blocks (``n d^2`` flops, by NumPy's BLAS); with more, it is
  estimated by power iteration, one pass over ``X`` per iteration, which
  approaches ``L`` from below (the rate is then at most a little above
  ``1 / L``, still far from ``2 / L``).
* ``L_max``, the largest curvature of a single sample's loss, ``2a * s_i *
  |A_i|^2``. With it, the expected smoothness of a mini-batch of ``B`` of
  ``n`` samples drawn without replacement is (Gower et al., "SGD: General
  Analysis and Improved Rates", ICML 2019, Proposition 3.8)

      ``L(B) = n (B - 1) / (B (n - 1)) L + (n - B) / (B (n - 1)) L_max``

  and their step size ``1 / (2 L(B))`` makes SGD converge. ``B = 1`` gives
  ``1 / (2 L_max)``, which makes each per-sample step move that sample's
  residual by at most half of it: it can never diverge.
"""

from __future__ import annotations

import math

import numpy as np

from . import _standardize
from ._engines import Backend

#: power iterations (passes over X) of the estimates
ITERATIONS = 20

#: up to this many features, lr="auto" forms A.T @ S @ A and takes its exact
#: largest eigenvalue
GRAM_FEATURES = 128


def largest_curvature(engine: Backend, X: np.ndarray, *, loss_factor: float,
                      fit_intercept: bool, n_threads: int, iterations: int = ITERATIONS,
                      weights: np.ndarray | None = None,
                      standardize: np.ndarray | None = None) -> float:
    """``L``, the largest eigenvalue of the loss's Hessian (see the module),
    estimated by power iteration from a seeded random start; it approaches
    ``L`` from below. ``inf`` when ``X.T @ X`` overflows, 0 when ``H`` is 0."""
    n, d = X.shape
    # A seeded random start: a fixed one (all ones, say) can be orthogonal to
    # the top eigenvector and never find it.
    v = np.random.default_rng(0).standard_normal(d + 1)
    if not fit_intercept:
        v[d] = 0.0
    v /= np.linalg.norm(v)
    eigenvalue = 0.0
    for _ in range(iterations):
        out = engine.sums(X, None, v, n_threads, weights=weights, standardize=standardize)
        product = np.append(out[2:], out[1] if fit_intercept else 0.0) / n
        with np.errstate(over="ignore"):
            eigenvalue = float(np.linalg.norm(product))
        if not math.isfinite(eigenvalue) or eigenvalue == 0.0:
            break
        v = product / eigenvalue
    return 2.0 * loss_factor * eigenvalue


def exact_largest_curvature(X: np.ndarray, *, loss_factor: float, fit_intercept: bool,
                            weights: np.ndarray | None = None,
                            standardize: np.ndarray | None = None) -> float:
    """``L`` from ``A.T @ S @ A / n`` formed in one pass over ``X`` in blocks
    (``numpy.linalg.eigvalsh``); for up to ``GRAM_FEATURES`` features."""
    n, d = X.shape
    gram = np.zeros((d + 1, d + 1))
    step = max(1, _standardize.BLOCK_BYTES // (8 * d))
    for start in range(0, n, step):
        block = X[start:start + step]
        A = np.empty((block.shape[0], d + 1))
        if standardize is not None:
            np.subtract(block, standardize[0], out=A[:, :d])
            A[:, :d] *= standardize[1]
        else:
            A[:, :d] = block
        A[:, d] = 1.0 if fit_intercept else 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            if weights is None:
                gram += A.T @ A
            else:
                root = np.sqrt(weights[start:start + step])
                A *= root[:, None]
                gram += A.T @ A
    if not np.all(np.isfinite(gram)):
        return math.inf
    return 2.0 * loss_factor * float(np.linalg.eigvalsh(gram / n)[-1])


def largest_sample_curvature(X: np.ndarray, *, loss_factor: float, fit_intercept: bool,
                             weights: np.ndarray | None = None,
                             standardize: np.ndarray | None = None,
                             rows: np.ndarray | None = None) -> float:
    """``L_max = max_i 2a * s_i * (|z_i|^2 + 1)`` over ``rows`` (all: None),
    ``z_i`` the row as training sees it; one pass over ``X`` in blocks."""
    n_rows = X.shape[0] if rows is None else rows.shape[0]
    d = X.shape[1]
    step = max(1, _standardize.BLOCK_BYTES // (8 * d))
    largest = 0.0
    for start in range(0, n_rows, step):
        stop = min(start + step, n_rows)
        block = np.asarray(X[start:stop] if rows is None else X[rows[start:stop]],
                           dtype=np.float64)
        if standardize is not None:
            block = np.subtract(block, standardize[0])
            block *= standardize[1]
        norms = np.einsum("ij,ij->i", block, block)
        if fit_intercept:
            norms += 1.0
        if weights is not None:
            norms *= weights[start:stop] if rows is None else weights[rows[start:stop]]
        largest = max(largest, float(norms.max()))
    return 2.0 * loss_factor * largest


def auto_lr(full: float, per_sample: float, batch_size: int, n_train: int) -> float:
    """``lr="auto"``: ``1 / L`` for full batch, ``1 / (2 L(B))`` for batches of
    ``B < n`` (see the module) from ``L = full`` and ``L_max = per_sample``."""
    if batch_size >= n_train:
        curvature = full
    else:
        B, n = batch_size, n_train
        curvature = 2.0 * (n * (B - 1) / (B * (n - 1)) * full
                           + (n - B) / (B * (n - 1)) * per_sample)
    if not curvature > 0.0:
        return 1.0          # the loss does not depend on the parameters: any rate
    return 1.0 / curvature
