"""What happens when training blows up: ``on_divergence="raise"`` (the
default: DivergenceError with the last finite parameters), ``"stop"`` (return
those parameters, ``stop_reason="diverged"``) and ``"halve"`` (warn, halve the
rate, rerun the epoch from its start).

Two problems: ordinary data with a far too large rate, where sgd blows up
within an epoch; and a constructed one where sgd at lr=1.5 blows up in its
second epoch while lr=0.75 is stable (rows of unit norm, consistent targets,
a start 1e140 away from the solution: each step at 1.5 may triple the error,
each step at 0.75 shrinks it), so that a single halving rescues the run and
the outcome has an exact oracle: one epoch at 1.5, then the rest at 0.75.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gdcore


@pytest.fixture(scope="module")
def ordinary():
    X, y, _ = gdcore.make_regression(60, 3, noise=0.3, bias=0.2, seed=2)
    return X, y


@pytest.fixture(scope="module")
def rescuable():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 2))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    w_true = np.array([1.0, -2.0])
    w0 = w_true + 1e140 * np.array([1.0, 0.5])
    return X, X @ w_true, w0


RESCUABLE = dict(method="sgd", fit_intercept=False, epochs=4)


def _diverge(X, y, **options):
    with pytest.raises(gdcore.DivergenceError) as info:
        gdcore.fit(X, y, **options)
    return info.value


# ---------------------------------------------------------------------------
# raise and stop
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("lr", [1e2, 1e6])
def test_sgd_blows_up_within_an_epoch_and_raises(ordinary, backend, shuffle, lr):
    """The default policy raises, keeping the parameters in force before the
    failing step: those a callback sees after the step before it."""
    X, y = ordinary
    options = dict(method="sgd", lr=lr, epochs=5, shuffle=shuffle, seed=1, backend=backend)
    err = _diverge(X, y, **options)
    assert isinstance(err, FloatingPointError)
    assert 0 < err.step < 60 and err.epoch < 5
    assert np.isfinite(err.w).all() and np.isfinite(err.b)
    assert err.history.shape == (err.epoch,)
    seen = {}

    def record(info):
        seen[(info["epoch"], info["step"])] = (info["w"], info["b"])

    _diverge(X, y, callback=record, callback_every=1, **options)
    w, b = seen[(err.epoch, err.step)]
    np.testing.assert_array_equal(err.w, w)
    assert err.b == b
    # raise is the default
    explicit = _diverge(X, y, on_divergence="raise", **options)
    np.testing.assert_array_equal(explicit.w, err.w)


@pytest.mark.parametrize("method,batch_size,steps", [("batch", 60, 1), ("sgd", 1, 60),
                                                     ("minibatch", 7, 9)])
@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
def test_stop_returns_the_errors_parameters(ordinary, backend, method, batch_size, steps,
                                            shuffle):
    """on_divergence="stop" returns what DivergenceError carries for the same
    call: finite w and b, the complete epochs' history, stop_reason "diverged"."""
    X, y = ordinary
    options = dict(method=method, batch_size=batch_size, lr=1e3, epochs=50, shuffle=shuffle,
                   seed=4, backend=backend, momentum=0.2)
    err = _diverge(X, y, **options)
    result = gdcore.fit(X, y, on_divergence="stop", **options)
    assert result.stop_reason == "diverged"
    assert np.isfinite(result.w).all() and np.isfinite(result.b)
    np.testing.assert_array_equal(result.w, err.w)
    assert result.b == err.b
    np.testing.assert_array_equal(result.history, err.history)
    assert result.epochs_run == err.epoch
    assert result.n_steps == err.epoch * steps + err.step


@pytest.mark.parametrize("policy", ["raise", "stop"])
@pytest.mark.parametrize("method,batch_size", [("batch", 60), ("sgd", 1), ("minibatch", 7)])
def test_backends_agree_on_divergence(assert_agree, ordinary, policy, method, batch_size):
    """The same DivergenceError (epoch, step, w, b, history) or the same stopped
    result (steps, w, b, history, stop_reason) from both backends."""
    X, y = ordinary
    options = dict(method=method, batch_size=batch_size, lr=1e3, epochs=50, seed=4,
                   on_divergence=policy)
    if policy == "raise":
        compiled = _diverge(X, y, backend="cython", **options)
        reference = _diverge(X, y, backend="reference", **options)
    else:
        compiled = gdcore.fit(X, y, backend="cython", **options)
        reference = gdcore.fit(X, y, backend="reference", **options)
        assert compiled.stop_reason == "diverged"
    assert_agree(compiled, reference, atol=0)


# ---------------------------------------------------------------------------
# halve
# ---------------------------------------------------------------------------

def _halved_oracle(X, y, w0, *, backend, shuffle, **extra):
    """One epoch at 1.5, then (the rate halved) the rest at 0.75, continued
    exactly (warm start: same rng, momentum buffer, step count)."""
    common = dict(RESCUABLE, shuffle=shuffle, seed=3, backend=backend, **extra)
    first = gdcore.fit(X, y, **{**common, "epochs": 1}, lr=1.5, w0=w0)
    assert first.stop_reason == "max_epochs"
    return first, gdcore.fit(X, y, **{**common, "epochs": 3}, lr=0.75, warm_start=first)


def test_the_rescuable_problem_is_what_it_claims(rescuable):
    X, y, w0 = rescuable
    err = _diverge(X, y, lr=1.5, w0=w0, shuffle=False, **RESCUABLE)
    assert err.epoch == 1
    stable = gdcore.fit(X, y, lr=0.75, w0=w0, shuffle=False, **RESCUABLE)
    assert stable.stop_reason == "max_epochs" and np.isfinite(stable.history).all()


@pytest.mark.parametrize("extra", [{}, dict(momentum=0.1)], ids=["plain", "momentum"])
def test_halve_warns_halves_and_continues(rescuable, backend, extra):
    X, y, w0 = rescuable
    with pytest.warns(RuntimeWarning, match="diverged") as caught:
        result = gdcore.fit(X, y, lr=1.5, w0=w0, shuffle=False, on_divergence="halve",
                            backend=backend, **RESCUABLE, **extra)
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 1
    assert "0.75" in str(caught[0].message)
    assert result.stop_reason == "max_epochs" and result.epochs_run == 4
    np.testing.assert_array_equal(result.lr_history, [1.5, 0.75, 0.75, 0.75])
    first, rest = _halved_oracle(X, y, w0, backend=backend, shuffle=False, **extra)
    np.testing.assert_array_equal(result.w, rest.w)
    np.testing.assert_array_equal(result.history, np.r_[first.history, rest.history])


def test_halve_reruns_the_epoch_in_the_same_order(rescuable, backend):
    """With shuffling, "rerun the epoch from its start" at half the rate: the
    epoch is rerun over the same permutation (the generator is restored to
    the epoch's start, like every other piece of state), so the run equals
    one epoch at 1.5 and then the rest at 0.75 continued exactly."""
    X, y, w0 = rescuable
    with pytest.warns(RuntimeWarning, match="diverged"):
        result = gdcore.fit(X, y, lr=1.5, w0=w0, shuffle=True, seed=3, on_divergence="halve",
                            backend=backend, **RESCUABLE)
    np.testing.assert_array_equal(result.lr_history, [1.5, 0.75, 0.75, 0.75])
    first, rest = _halved_oracle(X, y, w0, backend=backend, shuffle=True)
    np.testing.assert_array_equal(result.history, np.r_[first.history, rest.history])
    np.testing.assert_array_equal(result.w, rest.w)


def test_halve_backends_agree(assert_agree, rescuable):
    X, y, w0 = rescuable
    results = []
    for backend in ("cython", "reference"):
        with pytest.warns(RuntimeWarning):
            results.append(gdcore.fit(X, y, lr=1.5, w0=w0, shuffle=True, seed=3,
                                      on_divergence="halve", backend=backend,
                                      momentum=0.1, **RESCUABLE))
    assert_agree(results[0], results[1], atol=0)
    np.testing.assert_array_equal(results[0].lr_history, results[1].lr_history)


def test_halve_gives_up_after_30_halvings(rescuable, backend):
    """A rate that 30 halvings cannot tame: 30 warnings, then DivergenceError."""
    X, y, w0 = rescuable
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(gdcore.DivergenceError):
            gdcore.fit(X, y, lr=1e300, w0=w0, shuffle=False, on_divergence="halve",
                       backend=backend, **RESCUABLE)
    assert len([w for w in caught if issubclass(w.category, RuntimeWarning)]) == 30


def test_halve_raises_at_once_when_the_epoch_starts_non_finite(ordinary, backend):
    """Full batch at lr=1e300: the first step lands far out, and epoch 1's very
    first loss overflows, which no smaller rate can change: raise, no warning."""
    X, y = ordinary
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(gdcore.DivergenceError) as info:
            gdcore.fit(X, y, method="batch", lr=1e300, epochs=5, on_divergence="halve",
                       backend=backend)
    assert info.value.epoch == 1 and info.value.step == 0


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("value,error", [("ignore", ValueError), ("Raise", ValueError),
                                         ("", ValueError), (None, TypeError),
                                         (True, TypeError), (0, TypeError)])
def test_bad_on_divergence_raises_naming_it(ordinary, value, error):
    X, y = ordinary
    with pytest.raises(error, match="on_divergence"):
        gdcore.fit(X, y, epochs=1, on_divergence=value)
