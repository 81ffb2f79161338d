"""restore_best: the result of the best epoch, kept across every call of a run;
ConvergenceWarning: tol set and the epochs ran out."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gdcore


@pytest.fixture(scope="module")
def problem():
    X, y, _ = gdcore.make_regression(120, 3, noise=1.0, bias=0.5, seed=3)
    return X, y


#: noisy per-sample steps: the held-out loss goes up and down from epoch to epoch
NOISY = dict(method="sgd", lr=0.08, epochs=8, seed=11)


def _same(a, b):
    np.testing.assert_array_equal(a.w, b.w)
    np.testing.assert_array_equal(a.b, b.b)


@pytest.mark.parametrize("stop_on", ["validation", "loss"])
def test_the_best_epoch_is_the_lowest_monitored_loss(problem, backend, stop_on):
    """best_epoch is the argmin of the monitored loss (not the last epoch here);
    w and b are the bits of a run stopped after that epoch."""
    X, y = problem
    options = dict(NOISY, backend=backend, stop_on=stop_on, validation_fraction=0.25)
    result = gdcore.fit(X, y, restore_best=True, **options)
    last = gdcore.fit(X, y, **options)
    monitored = result.val_loss if stop_on == "validation" else result.history
    best = int(np.argmin(monitored))
    assert result.best_epoch == best < result.epochs_run - 1
    assert result.best_loss == result.history[best]
    assert result.best_val_loss == result.val_loss[best]
    assert monitored[best] < monitored[-1]
    # everything else is the last epoch's record
    np.testing.assert_array_equal(result.history, last.history)
    assert not np.array_equal(result.w, last.w)
    stopped_there = gdcore.fit(X, y, **{**options, "epochs": best + 1})
    _same(result, stopped_there)
    # the state goes on from the last epoch
    np.testing.assert_array_equal(result.state.params, last.state.params)


def test_backends_agree(problem, assert_agree):
    X, y = problem
    options = dict(NOISY, stop_on="validation", restore_best=True)
    a = gdcore.fit(X, y, backend="cython", **options)
    b = gdcore.fit(X, y, backend="reference", **options)
    assert_agree(a, b)
    assert a.best_epoch == b.best_epoch
    np.testing.assert_allclose(a.best_val_loss, b.best_val_loss, rtol=1e-9)


def test_without_a_split_best_val_loss_is_none(problem):
    X, y = problem
    result = gdcore.fit(X, y, restore_best=True, **NOISY)
    assert result.best_val_loss is None
    assert result.best_loss == result.history.min()
    plain = gdcore.fit(X, y, **NOISY)
    assert (plain.best_epoch, plain.best_loss, plain.best_val_loss) == (None, None, None)


def test_warm_start_continues_the_search(problem, backend):
    """3 epochs and then 5 more pick the best of all 8: the bits of one call."""
    X, y = problem
    options = dict(NOISY, backend=backend, stop_on="validation", restore_best=True)
    whole = gdcore.fit(X, y, **options)
    first = gdcore.fit(X, y, **{**options, "epochs": 3})
    second = gdcore.fit(X, y, warm_start=first, **{**options, "epochs": 5})
    _same(second, whole)
    assert (second.best_epoch, second.best_loss, second.best_val_loss) == \
        (whole.best_epoch, whole.best_loss, whole.best_val_loss)


def test_partial_fit_keeps_the_best_of_all_calls(problem):
    X, y = problem
    options = dict(method="sgd", lr=0.08, seed=11, stop_on="validation", restore_best=True)
    model = gdcore.LinearRegressor(epochs=8, **options).fit(X, y)
    stream = gdcore.LinearRegressor(**options)
    for _ in range(8):
        stream.partial_fit(X, y)
    np.testing.assert_array_equal(stream.coef_, model.coef_)
    assert stream.intercept_ == model.intercept_
    assert stream.result_.best_epoch == model.result_.best_epoch


def test_with_averaging_the_best_is_the_average_then(problem):
    X, y = problem
    options = dict(NOISY, average=50, restore_best=True)
    result = gdcore.fit(X, y, **options)
    stopped_there = gdcore.fit(X, y, **{**options, "restore_best": False,
                                        "epochs": result.best_epoch + 1})
    _same(result, stopped_there)


def test_with_early_stopping_and_several_outputs(problem):
    """tol stops the run; the best epoch is n_iter_no_change + 1 epochs back
    at most, and each output gets that epoch's parameters."""
    X, y = problem
    Y = np.c_[y, 2 * y]
    result = gdcore.fit(X, Y, restore_best=True, stop_on="validation", tol=0.0,
                        n_iter_no_change=2, **{**NOISY, "epochs": 50})
    assert result.stop_reason == "tol (validation)"
    assert result.epochs_run - 3 <= result.best_epoch < result.epochs_run
    assert result.w.shape == (3, 2)
    stopped_there = gdcore.fit(X, Y, stop_on="validation",
                               **{**NOISY, "epochs": result.best_epoch + 1})
    _same(result, stopped_there)


def test_diverged_with_stop_returns_the_best(problem):
    X, y = problem
    result = gdcore.fit(X, y * 1e3, method="batch", lr=1.1, epochs=2000, restore_best=True,
                        on_divergence="stop")
    assert result.stop_reason == "diverged"
    assert np.isfinite(result.w).all()
    assert result.best_epoch == int(np.argmin(result.history))


@pytest.mark.parametrize("options, error, message", [
    (dict(restore_best=True, stop_on="grad_norm"), ValueError, "restore_best.*stop_on"),
    (dict(restore_best=1), TypeError, "restore_best must be True or False"),
    (dict(restore_best="yes"), TypeError, "restore_best"),
])
def test_bad_restore_best(problem, options, error, message):
    X, y = problem
    with pytest.raises(error, match=message):
        gdcore.fit(X, y, **options)
    with pytest.raises(error, match=message):
        gdcore.LinearRegressor(**options).fit(X, y)


# ---------------------------------------------------------------------------
# ConvergenceWarning
# ---------------------------------------------------------------------------

def test_convergence_warning_is_exported_and_a_user_warning():
    assert "ConvergenceWarning" in gdcore.__all__
    assert issubclass(gdcore.ConvergenceWarning, UserWarning)


def test_warned_when_tol_is_set_and_the_epochs_run_out(problem):
    X, y = problem
    with pytest.warns(gdcore.ConvergenceWarning,
                      match=r"all 3 epochs without meeting tol=1e-09 \(stop_on='loss'\)") \
            as caught:
        result = gdcore.fit(X, y, epochs=3, tol=1e-9, seed=0)
    assert result.stop_reason == "max_epochs"
    assert len(caught) == 1
    assert caught[0].filename == __file__         # the line that called fit
    with pytest.warns(gdcore.ConvergenceWarning) as caught:
        gdcore.LinearRegressor(epochs=2, tol=1e-9, stop_on="grad_norm").fit(X, y)
    assert caught[0].filename == __file__
    assert "\n" not in str(caught[0].message)


@pytest.mark.parametrize("options", [
    dict(epochs=3),                                           # no tol
    dict(epochs=500, tol=1e-3, method="batch", lr=0.3),       # met
    dict(epochs=0, tol=1e-3),                                 # nothing run
])
def test_not_warned_otherwise(problem, options):
    X, y = problem
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gdcore.fit(X, y, **options)


def test_partial_fit_does_not_warn(problem):
    X, y = problem
    model = gdcore.LinearRegressor(tol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.partial_fit(X, y)
        model.partial_fit(X, y)
    with pytest.warns(gdcore.ConvergenceWarning):
        model.fit(X, y)
