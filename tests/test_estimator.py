"""LinearRegressor (the scikit-learn style face of fit) and make_regression."""

from __future__ import annotations

import numpy as np
import pytest

import gdcore

PARAMS = ["method", "batch_size", "lr", "epochs", "fit_intercept", "loss", "shuffle", "seed",
          "backend", "n_threads", "momentum", "nesterov", "dampening", "weight_decay", "l1",
          "decay_bias", "schedule", "average", "tol", "stop_on", "n_iter_no_change",
          "validation_fraction", "on_divergence", "check_lr", "verbose", "progress", "optimizer",
          "l1_method", "standardize", "restore_best", "random_state"]


@pytest.fixture(scope="module")
def data():
    X, y, w_true = gdcore.make_regression(120, 3, noise=0.05, bias=0.8, seed=3)
    return X, y, w_true


# ---------------------------------------------------------------------------
# LinearRegressor
# ---------------------------------------------------------------------------

def test_fit_sets_the_fitted_attributes_from_gdcore_fit(data, backend):
    """fit returns self and stores fit's w, b, history and epochs as coef_,
    intercept_, loss_curve_, n_iter_, plus n_features_in_."""
    X, y, _ = data
    options = dict(method="minibatch", batch_size=16, lr=0.05, epochs=4, seed=0,
                   backend=backend)
    model = gdcore.LinearRegressor(**options)
    assert model.fit(X, y) is model
    result = gdcore.fit(X, y, **options)
    np.testing.assert_array_equal(model.coef_, result.w)
    assert model.intercept_ == result.b
    np.testing.assert_array_equal(model.loss_curve_, result.history)
    assert model.n_iter_ == 4
    assert model.n_features_in_ == 3
    np.testing.assert_array_equal(model.predict(X), gdcore.predict(X, result.w, result.b))


def test_fit_intercept_false_gives_zero_intercept(data):
    X, y, _ = data
    model = gdcore.LinearRegressor(method="batch", lr=0.2, epochs=20,
                                   fit_intercept=False).fit(X, y)
    assert model.intercept_ == 0.0


def test_learns_the_true_model(data):
    """On near noise-free data, a converged batch fit recovers w_true and the
    bias and scores R^2 close to (but below) 1."""
    X, y, w_true = data
    model = gdcore.LinearRegressor(method="batch", lr=0.3, epochs=300).fit(X, y)
    np.testing.assert_allclose(model.coef_, w_true, atol=0.05)
    assert model.intercept_ == pytest.approx(0.8, abs=0.05)
    assert 0.99 < model.score(X, y) < 1.0


def test_score_is_r_squared(data):
    """score is 1 - SS_res / SS_tot, computed here with NumPy."""
    X, y, _ = data
    model = gdcore.LinearRegressor(method="sgd", lr=0.01, epochs=1, seed=1).fit(X, y)
    residual = y - X @ model.coef_ - model.intercept_
    expected = 1 - residual @ residual / np.sum((y - y.mean()) ** 2)
    assert model.score(X, y) == pytest.approx(expected, rel=1e-12)
    assert model.score(X, y) < 0.999       # one short epoch: not a perfect fit


def test_score_of_a_perfect_fit_is_one(data):
    """Targets the model predicts exactly score exactly 1.0; a constant target
    predicted exactly is also 1.0, and predicted wrongly 0.0."""
    X, y, _ = data
    model = gdcore.LinearRegressor(method="batch", lr=0.1, epochs=5).fit(X, y)
    assert model.score(X, model.predict(X)) == 1.0
    # exact convergence: X = 1, y = 2, no intercept, lr = 0.5 -> w = 2 in one step
    ones = np.ones((4, 1))
    exact = gdcore.LinearRegressor(method="batch", lr=0.5, epochs=1,
                                   fit_intercept=False).fit(ones, [2.0] * 4)
    assert exact.coef_[0] == 2.0
    assert exact.score(ones, [2.0] * 4) == 1.0
    assert exact.score(ones, [3.0] * 4) == 0.0


def test_get_params_and_set_params():
    """get_params lists every constructor argument; set_params changes them,
    returns self, and refuses unknown names with ValueError (changing nothing)."""
    model = gdcore.LinearRegressor(lr=0.5, seed=4)
    params = model.get_params()
    assert list(params) == PARAMS
    assert params["lr"] == 0.5 and params["seed"] == 4 and params["method"] == "minibatch"
    assert model.set_params(epochs=3, method="sgd") is model
    assert (model.epochs, model.method) == (3, "sgd")
    with pytest.raises(ValueError, match="learning_rate"):
        model.set_params(epochs=7, learning_rate=0.1)
    assert model.epochs == 3
    clone = gdcore.LinearRegressor(**model.get_params())
    assert clone.get_params() == model.get_params()


def test_defaults_match_the_design():
    """The constructor defaults are those of documented API (README, "A short tour")."""
    params = gdcore.LinearRegressor().get_params()
    design = dict(method="minibatch", batch_size=32, lr=0.01, epochs=10, fit_intercept=True,
                  loss="mse", shuffle=True, seed=None, backend="cython")
    assert {name: params[name] for name in design} == design
    # the options added since then are off by default: plain gradient descent
    assert dict(params, **design) == dict(
        design, n_threads=None, momentum=0.0, nesterov=False, dampening=0.0, weight_decay=0.0,
        l1=0.0, decay_bias=False, schedule="constant", average=False, tol=None,
        stop_on="loss", n_iter_no_change=5, validation_fraction=None, on_divergence="raise",
        check_lr=False, verbose=0, progress=False, optimizer="sgd",
        l1_method="subgradient", standardize=False, restore_best=False, random_state=None)


def test_new_parameters_reach_fit(data, capsys):
    """n_threads, check_lr, verbose and progress are passed to gdcore.fit."""
    pytest.importorskip("tqdm")
    X, y, _ = data
    options = dict(method="batch", lr=0.2, epochs=3, n_threads=1)
    model = gdcore.LinearRegressor(verbose=1, progress=True, **options).fit(X, y)
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3 and "epoch 2:" in captured.out
    assert "3/3" in captured.err
    np.testing.assert_array_equal(model.coef_, gdcore.fit(X, y, **options).w)
    with pytest.warns(RuntimeWarning, match="the largest learning rate for which"):
        gdcore.LinearRegressor(method="batch", lr=10.0, epochs=1, check_lr=True,
                               on_divergence="stop").fit(X, y)
    with pytest.raises(ValueError, match=r"\bn_threads\b"):
        gdcore.LinearRegressor(n_threads=0, epochs=1).fit(X, y)


def test_repr_shows_the_non_default_parameters():
    assert repr(gdcore.LinearRegressor()) == "LinearRegressor()"
    assert repr(gdcore.LinearRegressor(lr=0.1, method="batch")) == \
        "LinearRegressor(method='batch', lr=0.1)"


def test_constructor_stores_without_checking_fit_checks():
    """Bad hyper-parameters are stored as given and refused by fit, naming them."""
    X, y, _ = gdcore.make_regression(10, 2, seed=0)
    model = gdcore.LinearRegressor(lr=-1.0)
    assert model.lr == -1.0
    with pytest.raises(ValueError, match=r"\blr\b"):
        model.fit(X, y)


def test_predict_before_fit_raises():
    with pytest.raises(AttributeError, match="fit"):
        gdcore.LinearRegressor().predict(np.zeros((2, 3)))


def test_predict_with_wrong_feature_count_raises(data):
    X, y, _ = data
    model = gdcore.LinearRegressor(epochs=1).fit(X, y)
    with pytest.raises(ValueError, match=r"\bX\b.*3"):
        model.predict(np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"\bX\b"):
        model.score(np.zeros((5, 4)), np.zeros(5))


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_predict_and_score_refuse_non_finite_input(data):
    X, y, _ = data
    model = gdcore.LinearRegressor(epochs=1).fit(X, y)
    bad_X = X.copy()
    bad_X[5, 2] = np.inf
    with pytest.raises(ValueError, match=r"\bX\b"):
        model.predict(bad_X)
    bad_y = y.copy()
    bad_y[0] = np.nan
    with pytest.raises(ValueError, match=r"\by\b"):
        model.score(X, bad_y)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_failed_fit_leaves_earlier_fit_unchanged(data):
    """A fit that raises (bad input or divergence) keeps the earlier fitted
    attributes as they were."""
    X, y, _ = data
    model = gdcore.LinearRegressor(method="batch", lr=0.1, epochs=5).fit(X, y)
    before = (model.coef_.copy(), model.intercept_, model.loss_curve_.copy(), model.n_iter_,
              model.n_features_in_)
    bad_X = X[:, :2].copy()
    bad_X[3, 0] = np.nan
    with pytest.raises(ValueError):
        model.fit(bad_X, y)
    with pytest.raises(ValueError):
        model.fit(X, y[:-1])
    model.set_params(lr=1e6, epochs=100)
    with pytest.raises(gdcore.DivergenceError):
        model.fit(X, y)
    np.testing.assert_array_equal(model.coef_, before[0])
    assert model.intercept_ == before[1]
    np.testing.assert_array_equal(model.loss_curve_, before[2])
    assert (model.n_iter_, model.n_features_in_) == before[3:]


def test_fit_with_a_seed_is_reproducible(data):
    """With an int seed every fit of a shuffled model gives the same result."""
    X, y, _ = data
    model = gdcore.LinearRegressor(method="sgd", lr=0.01, epochs=2, seed=5)
    first = model.fit(X, y).coef_.copy()
    np.testing.assert_array_equal(model.fit(X, y).coef_, first)
    model.set_params(seed=6)
    assert not np.array_equal(model.fit(X, y).coef_, first)


def test_refit_on_new_data_replaces_attributes(data):
    X, y, _ = data
    model = gdcore.LinearRegressor(method="batch", lr=0.1, epochs=3).fit(X, y)
    model.set_params(epochs=2).fit(X[:, :2], y)
    assert model.n_features_in_ == 2 and model.coef_.shape == (2,) and model.n_iter_ == 2


# ---------------------------------------------------------------------------
# make_regression
# ---------------------------------------------------------------------------

def test_make_regression_shapes_and_dtypes():
    X, y, w_true = gdcore.make_regression(17, 4, seed=0)
    assert X.shape == (17, 4) and y.shape == (17,) and w_true.shape == (4,)
    for array in (X, y, w_true):
        assert array.dtype == np.float64
    assert X.flags.c_contiguous


def test_make_regression_is_deterministic_by_seed():
    a = gdcore.make_regression(30, 3, noise=0.5, bias=1.0, seed=7)
    b = gdcore.make_regression(30, 3, noise=0.5, bias=1.0, seed=7)
    c = gdcore.make_regression(30, 3, noise=0.5, bias=1.0, seed=8)
    for left, right in zip(a, b, strict=True):
        np.testing.assert_array_equal(left, right)
    assert not np.array_equal(a[0], c[0])
    ss = gdcore.make_regression(30, 3, noise=0.5, bias=1.0, seed=np.random.SeedSequence(7))
    for left, right in zip(a, ss, strict=True):
        np.testing.assert_array_equal(left, right)


@pytest.mark.parametrize("bias", [0.0, -2.5])
def test_make_regression_noise_free_is_exactly_linear(bias):
    """noise=0 gives y == X @ w_true + bias."""
    X, y, w_true = gdcore.make_regression(200, 5, bias=bias, seed=1)
    np.testing.assert_allclose(y, X @ w_true + bias, rtol=0, atol=1e-12)


def test_make_regression_noise_has_the_requested_scale():
    """With noise=s the residual y - X @ w_true - bias has standard deviation ~s."""
    X, y, w_true = gdcore.make_regression(20_000, 3, noise=0.3, bias=1.0, seed=2)
    residual = y - X @ w_true - 1.0
    assert residual.std() == pytest.approx(0.3, rel=0.03)
    assert abs(residual.mean()) < 0.01


def test_make_regression_spans_several_row_blocks_consistently():
    """Rows beyond the first generation block are standard normal too and y
    stays linear in X across the block boundary."""
    X, y, w_true = gdcore.make_regression(70_000, 2, seed=5)
    np.testing.assert_allclose(y, X @ w_true, atol=1e-12)
    tail = X[65_536:]
    assert abs(tail.mean()) < 0.05 and tail.std() == pytest.approx(1.0, rel=0.05)
    assert not np.array_equal(tail[:10], X[:10])


@pytest.mark.parametrize("args,kwargs,error,name", [
    ((0, 3), {}, ValueError, "n_samples"),
    ((-5, 3), {}, ValueError, "n_samples"),
    ((2.5, 3), {}, TypeError, "n_samples"),
    ((10, 0), {}, ValueError, "n_features"),
    ((10, "3"), {}, TypeError, "n_features"),
    ((10, 3), dict(noise=-1.0), ValueError, "noise"),
    ((10, 3), dict(noise=float("nan")), ValueError, "noise"),
    ((10, 3), dict(bias=float("inf")), ValueError, "bias"),
    ((10, 3), dict(bias="1"), TypeError, "bias"),
    ((10, 3), dict(seed=-1), ValueError, "seed"),
    ((10, 3), dict(seed=1.5), TypeError, "seed"),
    ((10, 3), dict(seed=np.random.default_rng(0)), TypeError, "seed"),
])
def test_make_regression_rejects_bad_arguments(args, kwargs, error, name):
    with pytest.raises(error, match=rf"\b{name}\b"):
        gdcore.make_regression(*args, **kwargs)
