"""Raw, badly scaled and ill-conditioned data: ``standardize=True`` and
``lr="auto"``.

Independent checks:

* standardizing on the fly gives the bits of training on a standardized copy
  of X made with NumPy (same centres and scales), mapped back by hand;
* the centres and scales are NumPy's weighted mean and standard deviation;
* both backends agree (``rtol=1e-9``) for every method, multi-output, sample
  weights, validation, momentum;
* a memory-mapped X is not copied (peak memory far below X's size);
* ``lr="auto"`` is ``1 / L`` (``L`` from ``numpy.linalg.eigvalsh``) for full
  batch and Gower et al.'s ``1 / (2 L(B))`` otherwise, and never diverges;
* scikit-learn's raw diabetes data reaches least squares; ill-conditioned
  problems (standardized condition numbers 1e4 .. 1e6) reach the exact
  least-squares coefficients (normal equations solved in rational arithmetic)
  to 9 significant digits.
"""

from __future__ import annotations

import math
import subprocess
import sys
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest

import gdcore
from gdcore import _standardize

METHODS = {"sgd": dict(method="sgd", lr=0.01), "minibatch": dict(method="minibatch",
                                                                   batch_size=7, lr=0.02),
           "batch": dict(method="batch", lr=0.3)}


def _badly_scaled(n=120, d=5, k=None, seed=0):
    """Features of very different scales and offsets (as raw data looks)."""
    rng = np.random.default_rng(seed)
    scales = np.array([1e-3, 1.0, 250.0, 1e4, 3.0])[:d]
    offsets = np.array([5.0, -2.0, 1e3, 5e5, 0.0])[:d]
    X = rng.standard_normal((n, d)) * scales + offsets
    w = (rng.standard_normal(d) / scales if k is None
         else rng.standard_normal((d, k)) / scales[:, None])
    y = X @ w + 3.0 + 0.1 * rng.standard_normal(n if k is None else (n, k))
    return X, y


def _explicitly(X, y, scales, **options):
    """Train on a NumPy-standardized copy of X from the same start; the result's
    parameters in X's units."""
    Z = (X - scales[0]) * scales[1]
    weights = options.get("sample_weight")
    rows = np.arange(X.shape[0])
    if options.get("validation_fraction"):
        held = gdcore.fit(X, y, **{**options, "epochs": 0}).state.val_rows
        rows = np.setdiff1d(rows, held)
    b0 = np.average(y[rows], axis=0, weights=None if weights is None else weights[rows])
    res = gdcore.fit(Z, y, b0=b0, **options)
    d = X.shape[1]
    params = _standardize.to_data_units(
        np.concatenate([np.asarray(res.w).T.ravel(), np.ravel(res.b)]), scales, d)
    return res, params


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", ["plain", "momentum-weights", "multi-validation"])
def test_on_the_fly_is_a_standardized_copy_bit_for_bit(method, case):
    X, y = _badly_scaled(k=3 if case.startswith("multi") else None)
    options = dict(METHODS[method], epochs=4, seed=1)
    weights = None
    if case == "momentum-weights":
        weights = np.random.default_rng(5).uniform(0.2, 3.0, X.shape[0])
        options.update(momentum=0.6, sample_weight=weights, weight_decay=0.01)
    if case == "multi-validation":
        options.update(validation_fraction=0.25, nesterov=True, momentum=0.4)
    res = gdcore.fit(X, y, standardize=True, **options)
    rows = None
    if case == "multi-validation":
        rows = np.setdiff1d(np.arange(X.shape[0]), res.state.val_rows)
    normalized = None if weights is None else weights / weights.mean()
    scales = res.state.standardize
    np.testing.assert_allclose(scales, _standardize.feature_scales(X, normalized, rows),
                               rtol=1e-14)
    copy, params = _explicitly(X, y, scales, **options)
    if weights is None:
        np.testing.assert_array_equal(res.history, copy.history)
    else:   # the starting intercept, mean(y), is weighted by differently rounded weights
        np.testing.assert_allclose(res.history, copy.history, rtol=1e-10)
    d = X.shape[1]
    mine = np.concatenate([np.asarray(res.w).T.ravel(), np.ravel(res.b)])
    np.testing.assert_allclose(mine, params, rtol=1e-13 if weights is None else 1e-10)
    if case == "multi-validation":
        np.testing.assert_allclose(res.val_loss, copy.val_loss, rtol=1e-10)
    assert res.w.shape == (d, 3) if case.startswith("multi") else (d,)


def test_centres_and_scales_are_numpys_weighted_mean_and_std():
    X, _ = _badly_scaled(n=5000)
    weights = np.random.default_rng(1).uniform(0, 2, 5000)
    rows = np.arange(0, 5000, 3)
    got = _standardize.feature_scales(X, weights, rows)
    mean = np.average(X[rows], axis=0, weights=weights[rows])
    std = np.sqrt(np.average((X[rows] - mean) ** 2, axis=0, weights=weights[rows]))
    np.testing.assert_allclose(got[0], mean, rtol=1e-13)
    np.testing.assert_allclose(got[1], 1 / std, rtol=1e-11)


def test_blocks_keep_the_digits_of_a_large_offset(monkeypatch):
    """Many blocks, an offset of 1e9 and a spread of 1e-3: no E[x^2] - E[x]^2."""
    monkeypatch.setattr(_standardize, "BLOCK_BYTES", 8 * 3 * 7)
    rng = np.random.default_rng(2)
    X = 1e9 + 1e-3 * rng.standard_normal((1000, 3))
    got = _standardize.feature_scales(X, None, None)
    centred = X - 1e9                   # exact (Sterbenz)
    exact_mean = 1e9 + np.array([math.fsum(column) for column in centred.T]) / 1000
    assert np.all(np.abs(got[0] - exact_mean) <= 2 * np.spacing(1e9))
    np.testing.assert_allclose(1 / got[1], centred.std(axis=0), rtol=1e-6)


def test_backends_agree(backend, assert_agree):
    X, y = _badly_scaled(n=40, k=2)
    weights = np.linspace(0.5, 2.0, 40)
    for method in METHODS:
        options = dict(METHODS[method], epochs=3, seed=2, momentum=0.5, standardize=True,
                       sample_weight=weights, validation_fraction=0.2, average=True)
        assert_agree(gdcore.fit(X, y, backend=backend, **options),
                     gdcore.fit(X, y, backend="cython", **options))


def test_constant_feature_gets_weight_zero_and_predictions_stay_right():
    X, y = _badly_scaled(n=80)
    X = np.c_[X, np.full(80, 7.0)]
    res = gdcore.fit(X, y, standardize=True, method="batch", lr="auto", epochs=3000,
                     tol=1e-12, stop_on="grad_norm")
    assert res.w[-1] == 0.0
    coef = np.linalg.lstsq(np.c_[X[:, :-1], np.ones(80)], y, rcond=None)[0]
    np.testing.assert_allclose(X @ res.w + res.b, np.c_[X[:, :-1], np.ones(80)] @ coef,
                               rtol=1e-8)


def test_a_memory_mapped_X_is_not_copied(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "X.npy", rng.standard_normal((60_000, 100)) * 50 + 7)   # 48 MB
    X = np.load(tmp_path / "X.npy", mmap_mode="r")
    y = rng.standard_normal(60_000)
    tracemalloc.start()
    res = gdcore.fit(X, y, standardize=True, lr="auto", epochs=1, seed=0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert res.copied == ()
    assert peak < 20e6, peak        # the index array, the statistics' blocks


# ---------------------------------------------------------------------------
# Warm starts, partial_fit, checkpoints, the estimator and the command line
# ---------------------------------------------------------------------------

def test_warm_start_continues_exactly_and_refuses_a_switch():
    X, y = _badly_scaled()
    options = dict(method="minibatch", batch_size=9, lr="auto", momentum=0.5, seed=3,
                   standardize=True)
    whole = gdcore.fit(X, y, epochs=5, **options)
    first = gdcore.fit(X, y, epochs=3, **options)
    more = gdcore.fit(X, y, epochs=2, warm_start=first, **options)
    np.testing.assert_array_equal(more.w, whole.w)
    assert more.b == whole.b and more.lr == whole.lr == first.lr
    with pytest.raises(ValueError, match="warm_start was trained with standardize"):
        gdcore.fit(X, y, epochs=1, warm_start=first, **{**options, "standardize": False})
    plain = gdcore.fit(X, y, epochs=1, method="sgd", lr=1e-12)
    with pytest.raises(ValueError, match="warm_start was trained without standardize"):
        gdcore.fit(X, y, epochs=1, warm_start=plain, **options)


def test_partial_fit_keeps_the_first_chunks_statistics():
    X, y = _badly_scaled(n=200)
    model = gdcore.LinearRegressor(standardize=True, lr=0.01, seed=0)
    model.partial_fit(X[:100], y[:100])
    first = model.result_.state.standardize.copy()
    model.partial_fit(X[100:], y[100:])
    np.testing.assert_array_equal(model.result_.state.standardize, first)
    np.testing.assert_array_equal(first, _standardize.feature_scales(X[:100], None, None))


def test_the_estimator_on_raw_diabetes_data():
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_diabetes(return_X_y=True, scaled=False)
    least_squares = np.linalg.lstsq(np.c_[X, np.ones(len(y))], y, rcond=None)[0]
    best = 1 - np.sum((y - np.c_[X, np.ones(len(y))] @ least_squares) ** 2) / np.sum(
        (y - y.mean()) ** 2)
    # the default settings, standardized: within 0.01 of least squares' R^2
    for seed in range(3):
        model = gdcore.LinearRegressor(standardize=True, seed=seed).fit(X, y)
        assert model.score(X, y) > best - 0.01
    # raw, the defaults diverge, and the message says what to do
    with pytest.raises(gdcore.DivergenceError, match="lr='auto'.*standardize=True"):
        gdcore.fit(X, y, seed=0)
    # full batch with lr="auto": least squares itself
    res = gdcore.fit(X, y, standardize=True, method="batch", lr="auto", epochs=20_000,
                     tol=1e-10, stop_on="grad_norm")
    np.testing.assert_allclose(np.r_[res.w, res.b], least_squares, rtol=1e-6)
    assert res.stop_reason == "tol (grad_norm)"


def test_command_line_trains_standardized_with_lr_auto(tmp_path):
    X, y = _badly_scaled(n=300)
    np.savetxt(tmp_path / "data.csv", np.c_[X, y], delimiter=",",
               header="a,b,c,d,e,target", comments="")
    done = subprocess.run(
        [sys.executable, "-m", "gdcore", "train", "--data", "data.csv", "--target", "target",
         "--standardize", "--lr", "auto", "--method", "batch", "--epochs", "3000",
         "-o", "model.json"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    import json
    model = json.loads((tmp_path / "model.json").read_text())
    coef = np.linalg.lstsq(np.c_[X, np.ones(300)], y, rcond=None)[0]
    np.testing.assert_allclose(np.r_[model["w"], model["b"]], coef, rtol=1e-5)
    bad = subprocess.run([sys.executable, "-m", "gdcore", "train", "-n", "100", "-d", "3",
                          "--lr", "fast"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr


# ---------------------------------------------------------------------------
# lr="auto"
# ---------------------------------------------------------------------------

def _curvatures(X, weights=None, loss_factor=1.0):
    """L (numpy.linalg.eigvalsh) and L_max of the loss on the standardized X."""
    scales = _standardize.feature_scales(X, weights, None)
    Z = (X - scales[0]) * scales[1]
    A = np.c_[Z, np.ones(X.shape[0])]
    s = np.ones(X.shape[0]) if weights is None else weights
    full = 2 * loss_factor * np.linalg.eigvalsh(A.T @ (s[:, None] * A) / X.shape[0])[-1]
    per_sample = 2 * loss_factor * np.max(s * np.sum(A * A, axis=1))
    return full, per_sample


def test_auto_rates_are_the_documented_formulas():
    X, y = _badly_scaled(n=500)
    weights = np.random.default_rng(0).uniform(0.5, 1.5, 500)
    normalized = weights / weights.mean()
    full, per_sample = _curvatures(X, normalized, 0.5)
    options = dict(standardize=True, lr="auto", epochs=1, loss="half_mse",
                   sample_weight=weights, seed=0)
    batch = gdcore.fit(X, y, method="batch", **options)
    assert batch.lr == pytest.approx(1 / full, rel=1e-12)
    sgd = gdcore.fit(X, y, method="sgd", **options)
    assert sgd.lr == pytest.approx(1 / (2 * per_sample), rel=1e-12)
    B, n = 16, 500
    smoothness = n * (B - 1) / (B * (n - 1)) * full + (n - B) / (B * (n - 1)) * per_sample
    minibatch = gdcore.fit(X, y, method="minibatch", batch_size=B, **options)
    assert minibatch.lr == pytest.approx(1 / (2 * smoothness), rel=1e-12)


@pytest.mark.parametrize("method", ["sgd", "minibatch", "batch"])
@pytest.mark.parametrize("seed", range(4))
def test_auto_rates_never_diverge(method, seed):
    X, y = _badly_scaled(n=300, seed=seed)
    for standardize in (True, False):
        res = gdcore.fit(X, y, method=method, lr="auto", epochs=30, seed=seed,
                         standardize=standardize, momentum=0.5 if seed % 2 else 0.0)
        assert np.all(np.isfinite(res.history))
        assert res.history[-1] < res.history[0]


def test_auto_is_for_sgd_and_not_on_dask():
    X, y = _badly_scaled(n=30)
    with pytest.raises(ValueError, match="lr='auto'.*optimizer='adam'"):
        gdcore.fit(X, y, lr="auto", optimizer="adam")
    with pytest.raises(TypeError, match='lr must be a positive number or "auto"'):
        gdcore.fit(X, y, lr="fast")


# ---------------------------------------------------------------------------
# Ill-conditioned problems to full precision
# ---------------------------------------------------------------------------

def _exact_least_squares(X, y):
    """The least-squares coefficients [w, b], from the normal equations solved
    in rational arithmetic (exact for the float data given)."""
    A = [[Fraction(v) for v in row] + [Fraction(1)] for row in X.tolist()]
    t = [Fraction(v) for v in y.tolist()]
    m = len(A[0])
    G = [[sum(r[i] * r[j] for r in A) for j in range(m)]
         + [sum(r[i] * v for r, v in zip(A, t, strict=True))] for i in range(m)]
    for col in range(m):
        pivot = next(r for r in range(col, m) if G[r][col] != 0)
        G[col], G[pivot] = G[pivot], G[col]
        for r in range(m):
            if r != col and G[r][col] != 0:
                factor = G[r][col] / G[col][col]
                G[r] = [a - factor * b for a, b in zip(G[r], G[col], strict=True)]
    return np.array([float(G[i][m] / G[i][i]) for i in range(m)])


@pytest.mark.parametrize("condition", [1e4, 1e5, 1e6])
def test_ill_conditioned_to_nine_digits(condition):
    """Strongly correlated columns of very different scales and offsets (the
    standardized condition number is ``condition`` to within 10 %); full-batch
    Nesterov with ``lr="auto"`` and the momentum the condition number
    suggests, stopped by ``tol`` on the gradient norm, reaches the exact
    least-squares coefficients to 9 significant digits."""
    rng = np.random.default_rng(int(np.log10(condition)))
    n = 2000
    base = rng.standard_normal(n)
    spread = 3.0 / np.sqrt(condition)
    Z = np.c_[base, base + spread * rng.standard_normal(n), rng.standard_normal(n),
              base - spread * rng.standard_normal(n)]
    y = Z @ np.array([3.0, -2.0, 1.5, 2.5]) + 0.5 + 0.05 * rng.standard_normal(n)
    X = Z * np.array([1e-2, 1.0, 30.0, 1e3]) + np.array([4.0, -1e2, 0.0, 1e4])
    scales = _standardize.feature_scales(X, None, None)
    A = np.c_[(X - scales[0]) * scales[1], np.ones(n)]
    eigenvalues = 2 * np.linalg.eigvalsh(A.T @ A / n)
    kappa = eigenvalues[-1] / eigenvalues[0]
    assert 0.9 * condition < kappa < 1.1 * condition
    exact = _exact_least_squares(X, y)
    # |error in the standardized coefficients| <= |gradient| / smallest curvature
    tol = 1e-10 * eigenvalues[0] * np.min(np.abs(_standardize.from_data_units(exact,
                                                                            scales, 4)))
    momentum = (np.sqrt(kappa) - 1) / (np.sqrt(kappa) + 1)
    res = gdcore.fit(X, y, method="batch", standardize=True, lr="auto", momentum=momentum,
                     nesterov=True, epochs=100_000, tol=tol, stop_on="grad_norm",
                     n_threads=1)
    assert res.stop_reason == "tol (grad_norm)"
    np.testing.assert_allclose(np.r_[res.w, res.b], exact, rtol=1e-9)
