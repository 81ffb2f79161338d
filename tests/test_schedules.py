"""Learning-rate schedules (gdcore.schedules): the per-epoch rate recorded in
``result.lr_history`` follows each documented formula, training actually uses
those rates (checked against a NumPy replay fed the same rates), inverse
scaling decays per step, the plateau rule matches a replay of its documented
rule on the recorded history, both backends agree, and bad parameters raise
naming the parameter.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import gdcore
from gdcore import schedules

METHODS = [("batch", 19), ("sgd", 1), ("minibatch", 6)]   # n = 19: 6+6+6+1


@pytest.fixture(scope="module")
def data():
    X, y, _ = gdcore.make_regression(19, 3, noise=0.4, bias=0.5, seed=21)
    return X, y


def _replay_per_epoch(numpy_fit, X, y, rates, batch_size, orders=None):
    """The NumPy replay (conftest) run one epoch at a time with the given rates."""
    w, b, history = np.zeros(X.shape[1]), 0.0, []
    for epoch, rate in enumerate(rates):
        order = None if orders is None else [orders[epoch]]
        w, b, h = numpy_fit(X, y, lr=rate, epochs=1, batch_size=batch_size, w0=w, b0=b,
                            orders=order)
        history.append(h[0])
    return w, b, np.array(history)


def _plateau_rates(lr, history, factor, patience, threshold, min_lr):
    """Replay of schedules.Plateau's documented rule on a loss history: the rate of each
    epoch, given the losses of the epochs before it."""
    rate, best, bad = lr, math.inf, 0
    rates = []
    for loss in history:
        rates.append(rate)
        if loss < best - threshold:
            best, bad = loss, 0
        else:
            bad += 1
            if bad >= patience:
                rate, bad = max(rate / factor, min_lr), 0
    return rates


# ---------------------------------------------------------------------------
# lr_history follows the formulas
# ---------------------------------------------------------------------------

EPOCH_SCHEDULES = [
    ("constant", lambda lr, e: lr),
    (schedules.Constant(), lambda lr, e: lr),
    ("exponential", lambda lr, e: lr * 0.95 ** e),
    (schedules.Exponential(gamma=0.7), lambda lr, e: lr * 0.7 ** e),
    (schedules.Exponential(gamma=1.0), lambda lr, e: lr),
    ("step", lambda lr, e: lr * 0.5 ** (e // 10)),
    (schedules.StepDecay(step_size=3, gamma=0.25), lambda lr, e: lr * 0.25 ** (e // 3)),
    (schedules.StepDecay(step_size=1, gamma=0.5), lambda lr, e: lr * 0.5 ** e),
    # per-step decay: the epoch's rate "before any per-step decay" stays lr
    ("invscaling", lambda lr, e: lr),
    (schedules.InverseScaling(power=1.0), lambda lr, e: lr),
]


@pytest.mark.parametrize("schedule,formula", EPOCH_SCHEDULES,
                         ids=[repr(s) for s, _ in EPOCH_SCHEDULES])
def test_lr_history_follows_the_formula(data, backend, schedule, formula):
    X, y = data
    epochs = 12
    result = gdcore.fit(X, y, method="minibatch", batch_size=6, lr=0.03, epochs=epochs,
                        schedule=schedule, seed=1, backend=backend)
    expected = [formula(0.03, e) for e in range(epochs)]
    np.testing.assert_allclose(result.lr_history, expected, rtol=1e-15, atol=0)
    assert result.lr_history.shape == (epochs,)


@pytest.mark.parametrize("name,instance", [("constant", schedules.Constant()),
                                           ("invscaling", schedules.InverseScaling()),
                                           ("exponential", schedules.Exponential()),
                                           ("step", schedules.StepDecay()),
                                           ("plateau", schedules.Plateau())])
def test_name_is_the_default_instance(data, name, instance):
    """schedule="<name>" is the schedule object with its default parameters."""
    X, y = data
    options = dict(method="sgd", lr=0.02, epochs=4, seed=3)
    by_name = gdcore.fit(X, y, schedule=name, **options)
    by_object = gdcore.fit(X, y, schedule=instance, **options)
    np.testing.assert_array_equal(by_name.w, by_object.w)
    np.testing.assert_array_equal(by_name.lr_history, by_object.lr_history)


def test_documented_defaults():
    assert schedules.InverseScaling().power == 0.5
    assert schedules.Exponential().gamma == 0.95
    assert (schedules.StepDecay().step_size, schedules.StepDecay().gamma) == (10, 0.5)
    plateau = schedules.Plateau()
    assert (plateau.factor, plateau.patience, plateau.threshold, plateau.min_lr) == \
        (2.0, 3, 1e-4, 0.0)


# ---------------------------------------------------------------------------
# Training uses those rates
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("method,batch_size", METHODS)
@pytest.mark.parametrize("schedule", [schedules.Exponential(gamma=0.6),
                                      schedules.StepDecay(step_size=2, gamma=0.3)],
                         ids=["exponential", "step"])
def test_epoch_schedules_train_with_their_rates(data, numpy_fit, shuffle_orders, backend,
                                                schedule, method, batch_size, shuffle):
    """The parameters are those of plain training with epoch e run at
    lr_history[e] (a NumPy replay fed the formula's rates)."""
    X, y = data
    epochs = 5
    result = gdcore.fit(X, y, method=method, batch_size=batch_size, lr=0.05, epochs=epochs,
                        schedule=schedule, shuffle=shuffle, seed=8, backend=backend)
    rates = [schedule.epoch_lr(0.05, e, {}) for e in range(epochs)]
    orders = shuffle_orders(19, epochs, 8) if shuffle and method != "batch" else None
    size = {"batch": 19, "sgd": 1}.get(method, batch_size)
    w, b, history = _replay_per_epoch(numpy_fit, X, y, rates, size, orders)
    np.testing.assert_allclose(result.w, w, rtol=1e-11, atol=1e-14)
    assert result.b == pytest.approx(b, rel=1e-11, abs=1e-14)
    np.testing.assert_allclose(result.history, history, rtol=1e-11, atol=1e-14)


def _invscaling_oracle(X, y, *, lr, power, epochs, batch_size, orders=None):
    """Plain (mini-)batch descent with the rate lr / (t + 1) ** power at global
    step t (0-based)."""
    n, d = X.shape
    w, b, t = np.zeros(d), 0.0, 0
    history = []
    for epoch in range(epochs):
        order = np.arange(n) if orders is None else orders[epoch]
        losses = []
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            r = X[rows] @ w + b - y[rows]
            losses.append(np.mean(r ** 2))
            rate = lr / (t + 1) ** power
            w = w - rate * 2 / len(rows) * (X[rows].T @ r)
            b = b - rate * 2 / len(rows) * r.sum()
            t += 1
        history.append(np.mean(losses))
    return w, b, np.array(history)


@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("method,batch_size", METHODS)
@pytest.mark.parametrize("power", [0.5, 1.0, 0.25])
def test_inverse_scaling_decays_per_step(data, shuffle_orders, backend, power, method,
                                         batch_size, shuffle):
    """InverseScaling(p): the rate of global step t is lr / (t + 1) ** p,
    inside the epoch (checked against a loop doing exactly that)."""
    X, y = data
    epochs = 4 if method != "batch" else 8
    result = gdcore.fit(X, y, method=method, batch_size=batch_size, lr=0.05, epochs=epochs,
                        schedule=schedules.InverseScaling(power=power), shuffle=shuffle, seed=5,
                        backend=backend)
    orders = shuffle_orders(19, epochs, 5) if shuffle and method != "batch" else None
    size = {"batch": 19, "sgd": 1}.get(method, batch_size)
    w, b, history = _invscaling_oracle(X, y, lr=0.05, power=power, epochs=epochs,
                                       batch_size=size, orders=orders)
    np.testing.assert_allclose(result.w, w, rtol=1e-11, atol=1e-14)
    assert result.b == pytest.approx(b, rel=1e-11, abs=1e-14)
    np.testing.assert_allclose(result.history, history, rtol=1e-11, atol=1e-14)
    # the decay matters: the constant-rate run lands elsewhere
    w_constant, _, _ = _invscaling_oracle(X, y, lr=0.05, power=0.0, epochs=epochs,
                                          batch_size=size, orders=orders)
    assert not np.allclose(result.w, w_constant, rtol=1e-4)


# ---------------------------------------------------------------------------
# schedules.Plateau
# ---------------------------------------------------------------------------

def test_plateau_divides_after_patience_bad_epochs(data, backend):
    """With a rate so small that no epoch improves the loss by `threshold`,
    every epoch after the first is bad: the rate is divided by `factor` every
    `patience` epochs, down to min_lr."""
    X, y = data
    lr, factor, patience, min_lr = 1e-9, 4.0, 2, 1e-11
    result = gdcore.fit(X, y, method="batch", lr=lr, epochs=11, backend=backend,
                        schedule=schedules.Plateau(factor=factor, patience=patience, threshold=1e-3,
                                         min_lr=min_lr))
    # epoch 0 improves on +inf; epochs 1, 2 bad -> divide; 3, 4 bad -> divide ...
    expected = [lr, lr, lr, lr / 4, lr / 4, lr / 16, lr / 16, lr / 64, lr / 64, min_lr,
                min_lr]
    np.testing.assert_allclose(result.lr_history, expected, rtol=1e-15)


@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("method,batch_size", [("sgd", 1), ("minibatch", 6)])
def test_plateau_matches_replay_of_its_rule(data, numpy_fit, shuffle_orders, backend,
                                            method, batch_size, shuffle):
    """Noisy SGD at a largish rate improves, then hovers at a noise floor: the
    plateau rule fires. lr_history is the documented rule replayed on
    result.history, and the parameters are those of training at those rates."""
    X, y = data
    schedule = schedules.Plateau(factor=2.0, patience=2, threshold=1e-3)
    epochs = 25
    result = gdcore.fit(X, y, method=method, batch_size=batch_size, lr=0.1, epochs=epochs,
                        schedule=schedule, shuffle=shuffle, seed=2, backend=backend)
    rates = _plateau_rates(0.1, result.history, 2.0, 2, 1e-3, 0.0)
    np.testing.assert_array_equal(result.lr_history, rates)
    assert rates[-1] < 0.1 and rates[3] == 0.1    # it improved first, then fired
    orders = shuffle_orders(19, epochs, 2) if shuffle else None
    w, b, history = _replay_per_epoch(numpy_fit, X, y, rates, batch_size, orders)
    np.testing.assert_allclose(result.w, w, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result.history, history, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------
# Backends agree
# ---------------------------------------------------------------------------

ALL_SCHEDULES = ["constant", "invscaling", "exponential", "step", "plateau",
                 schedules.InverseScaling(power=0.75), schedules.StepDecay(step_size=2, gamma=0.5),
                 schedules.Plateau(factor=3.0, patience=1, threshold=1e-2, min_lr=1e-3)]


@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("method,batch_size", METHODS)
@pytest.mark.parametrize("schedule", ALL_SCHEDULES, ids=repr)
def test_backends_agree(assert_agree, data, schedule, method, batch_size, shuffle):
    X, y = data
    options = dict(method=method, batch_size=batch_size, lr=0.1, epochs=6, schedule=schedule,
                   shuffle=shuffle, seed=9, momentum=0.5)
    compiled = gdcore.fit(X, y, backend="cython", **options)
    reference = gdcore.fit(X, y, backend="reference", **options)
    assert_agree(compiled, reference)             # lr_history and grad_norm included


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

BAD_SCHEDULES = [
    (lambda: schedules.InverseScaling(power=0.0), ValueError, "power"),
    (lambda: schedules.InverseScaling(power=-0.5), ValueError, "power"),
    (lambda: schedules.InverseScaling(power=float("nan")), ValueError, "power"),
    (lambda: schedules.InverseScaling(power="half"), TypeError, "power"),
    (lambda: schedules.Exponential(gamma=0.0), ValueError, "gamma"),
    (lambda: schedules.Exponential(gamma=1.5), ValueError, "gamma"),
    (lambda: schedules.Exponential(gamma=-0.5), ValueError, "gamma"),
    (lambda: schedules.Exponential(gamma=float("inf")), ValueError, "gamma"),
    (lambda: schedules.Exponential(gamma=None), TypeError, "gamma"),
    (lambda: schedules.StepDecay(step_size=0), ValueError, "step_size"),
    (lambda: schedules.StepDecay(step_size=-2), ValueError, "step_size"),
    (lambda: schedules.StepDecay(step_size=2.5), TypeError, "step_size"),
    (lambda: schedules.StepDecay(step_size=True), TypeError, "step_size"),
    (lambda: schedules.StepDecay(gamma=0.0), ValueError, "gamma"),
    (lambda: schedules.StepDecay(gamma=2.0), ValueError, "gamma"),
    (lambda: schedules.Plateau(factor=1.0), ValueError, "factor"),
    (lambda: schedules.Plateau(factor=0.5), ValueError, "factor"),
    (lambda: schedules.Plateau(factor="2"), TypeError, "factor"),
    (lambda: schedules.Plateau(patience=0), ValueError, "patience"),
    (lambda: schedules.Plateau(patience=1.0), TypeError, "patience"),
    (lambda: schedules.Plateau(threshold=-1e-3), ValueError, "threshold"),
    (lambda: schedules.Plateau(threshold=float("nan")), ValueError, "threshold"),
    (lambda: schedules.Plateau(min_lr=-1.0), ValueError, "min_lr"),
    (lambda: schedules.Plateau(min_lr=float("inf")), ValueError, "min_lr"),
]


@pytest.mark.parametrize("make,error,name", BAD_SCHEDULES,
                         ids=[f"{case[2]}-{i}" for i, case in enumerate(BAD_SCHEDULES)])
def test_bad_schedule_parameters_raise_naming_them(make, error, name):
    with pytest.raises(error, match=name):
        make()


@pytest.mark.parametrize("schedule,error", [("cosine", ValueError), ("Constant", ValueError),
                                            ("", ValueError), (None, TypeError),
                                            (0.5, TypeError), (schedules.Exponential, TypeError),
                                            (lambda epoch: 0.1, TypeError)],
                         ids=["unknown", "case", "empty", "none", "number", "class",
                              "function"])
def test_bad_schedule_argument_raises_naming_it(data, backend, schedule, error):
    X, y = data
    with pytest.raises(error, match="schedule"):
        gdcore.fit(X, y, epochs=1, schedule=schedule, backend=backend)
