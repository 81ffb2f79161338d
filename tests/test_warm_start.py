"""Warm start: ``fit(epochs=3)`` then ``fit(epochs=2, warm_start=r)`` is bit for
bit ``fit(epochs=5)``, with every stateful option (shuffling, momentum,
Nesterov, schedules, averaging, early-stopping counters) and both backends;
the continued result is never mutated; bad warm starts raise.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

import gdcore
from gdcore import optimizers, schedules

METHODS = [("batch", 17), ("sgd", 1), ("minibatch", 5)]   # n = 17: 5+5+5+2

OPTIONS = {
    "plain": dict(shuffle=False),
    "shuffle": dict(shuffle=True),
    "momentum": dict(momentum=0.8, dampening=0.1),
    "nesterov": dict(momentum=0.6, nesterov=True),
    "penalties": dict(weight_decay=0.2, l1=0.05, decay_bias=True, momentum=0.3),
    "exponential": dict(schedule=schedules.Exponential(gamma=0.7)),
    "step": dict(schedule=schedules.StepDecay(step_size=2, gamma=0.5)),
    # threshold so large that every epoch after the first is "bad": the rate
    # is divided after epochs 1, 2, 3 ... (patience 1), across the split
    "plateau": dict(schedule=schedules.Plateau(factor=2.0, patience=1, threshold=1e6)),
    "plateau-noisy": dict(schedule=schedules.Plateau(factor=3.0, patience=2, threshold=1e-2)),
    "invscaling": dict(schedule=schedules.InverseScaling(power=0.6)),
    "average": dict(average=True, momentum=0.5),
    "average-late": dict(average=30),
    "weights": dict(sample_weight=np.linspace(0.5, 2.0, 17), momentum=0.4),
    "validation": dict(validation_fraction=0.2, momentum=0.4),
    "everything": dict(momentum=0.7, nesterov=True, weight_decay=0.1, l1=0.01,
                       schedule="invscaling", average=3, validation_fraction=0.3,
                       sample_weight=np.linspace(1.0, 3.0, 17)),
    "adam": dict(optimizer=optimizers.Adam(betas=(0.8, 0.99)), weight_decay=0.1),
    "adamw amsgrad": dict(optimizer=optimizers.AdamW(amsgrad=True), weight_decay=0.1, l1=0.01,
                          l1_method="proximal"),
    "adagrad": dict(optimizer=optimizers.Adagrad(lr_decay=0.01)),
    "rmsprop centered": dict(optimizer=optimizers.RMSprop(centered=True), momentum=0.5),
    "cumulative": dict(l1=0.05, l1_method="cumulative"),
    "standardize": dict(standardize=True, momentum=0.4, validation_fraction=0.2,
                        sample_weight=np.linspace(0.5, 2.0, 17)),
    "lr auto": dict(standardize=True, lr="auto", nesterov=True, momentum=0.5),
}


@pytest.fixture(scope="module")
def data():
    X, y, _ = gdcore.make_regression(17, 3, noise=0.5, bias=0.4, seed=31)
    return X, y


def _assert_continuation(whole, first, second):
    """`second` continued `first`; together they must be `whole`, bit for bit."""
    np.testing.assert_array_equal(second.w, whole.w)
    assert second.b == whole.b
    np.testing.assert_array_equal(np.r_[first.history, second.history], whole.history)
    np.testing.assert_array_equal(np.r_[first.lr_history, second.lr_history],
                                  whole.lr_history)
    np.testing.assert_array_equal(np.r_[first.grad_norm, second.grad_norm], whole.grad_norm)
    if whole.val_loss is not None:
        np.testing.assert_array_equal(np.r_[first.val_loss, second.val_loss], whole.val_loss)
    assert first.n_steps + second.n_steps == whole.n_steps
    assert second.epochs_run == whole.epochs_run - first.epochs_run
    assert second.state.global_step == whole.state.global_step
    assert second.state.epoch == whole.state.epoch


@pytest.mark.parametrize("method,batch_size", METHODS)
@pytest.mark.parametrize("name", list(OPTIONS))
def test_three_then_two_is_five(data, name, method, batch_size, backend):
    X, y = data
    options = dict(dict(method=method, batch_size=batch_size, lr=0.05, seed=7,
                        backend=backend), **OPTIONS[name])
    whole = gdcore.fit(X, y, epochs=5, **options)
    first = gdcore.fit(X, y, epochs=3, **options)
    second = gdcore.fit(X, y, epochs=2, warm_start=first, **options)
    _assert_continuation(whole, first, second)
    # a TrainState works as well as the FitResult holding it
    again = gdcore.fit(X, y, epochs=2, warm_start=first.state, **options)
    np.testing.assert_array_equal(again.w, whole.w)
    assert again.b == whole.b


def test_plateau_state_carries_across_the_split(data, backend):
    """The plateau case above really changes the rate across the split."""
    X, y = data
    options = dict(method="sgd", lr=0.05, seed=7, backend=backend, **OPTIONS["plateau"])
    first = gdcore.fit(X, y, epochs=3, **options)
    second = gdcore.fit(X, y, epochs=2, warm_start=first, **options)
    np.testing.assert_array_equal(np.r_[first.lr_history, second.lr_history],
                                  0.05 / np.array([1, 1, 2, 4, 8]))


@pytest.mark.parametrize("method,batch_size", METHODS)
def test_one_epoch_at_a_time(data, backend, method, batch_size):
    """Five warm starts of one epoch each are one run of five epochs."""
    X, y = data
    options = dict(method=method, batch_size=batch_size, lr=0.05, seed=2, backend=backend,
                   momentum=0.5, schedule=schedules.Exponential(gamma=0.8), average=4)
    whole = gdcore.fit(X, y, epochs=5, **options)
    result = gdcore.fit(X, y, epochs=1, **options)
    history = list(result.history)
    for _ in range(4):
        result = gdcore.fit(X, y, epochs=1, warm_start=result, **options)
        history += list(result.history)
    np.testing.assert_array_equal(result.w, whole.w)
    assert result.b == whole.b
    np.testing.assert_array_equal(history, whole.history)


def test_zero_epoch_continuation_returns_the_same_parameters(data, backend):
    X, y = data
    options = dict(method="sgd", lr=0.05, seed=2, backend=backend, momentum=0.5)
    first = gdcore.fit(X, y, epochs=2, **options)
    again = gdcore.fit(X, y, epochs=0, warm_start=first, **options)
    np.testing.assert_array_equal(again.w, first.w)
    assert again.b == first.b and again.n_steps == 0


def test_early_stopping_counters_carry_over(data, backend):
    """The no-improvement count continues: a run that stops early at epoch k
    stops at the same epoch when split in two before k."""
    X, y = data
    options = dict(method="sgd", lr=0.05, seed=3, tol=1e-2, n_iter_no_change=3,
                   backend=backend)
    whole = gdcore.fit(X, y, epochs=200, **options)
    assert whole.stop_reason == "tol (loss)"
    k = whole.epochs_run
    assert k >= 4
    first = gdcore.fit(X, y, epochs=k - 1, **options)
    assert first.stop_reason == "max_epochs"
    second = gdcore.fit(X, y, epochs=200, warm_start=first, **options)
    assert second.stop_reason == "tol (loss)"
    assert second.epochs_run == 1
    np.testing.assert_array_equal(second.w, whole.w)


def test_backends_agree_on_continuations(assert_agree, data, backend):
    """A continuation on one backend of a run from the other agrees with the
    one-backend run to rtol 1e-9 (the state is backend-neutral)."""
    X, y = data
    other = "reference" if backend == "cython" else "cython"
    options = dict(method="minibatch", batch_size=5, lr=0.05, seed=4, **OPTIONS["everything"])
    whole = gdcore.fit(X, y, epochs=5, backend=backend, **options)
    first = gdcore.fit(X, y, epochs=3, backend=other, **options)
    second = gdcore.fit(X, y, epochs=2, warm_start=first, backend=backend, **options)
    assert_agree(second.w, whole.w)
    assert_agree(second.b, whole.b)
    assert_agree(second.history, whole.history[3:])
    assert_agree(second.val_loss, whole.val_loss[3:])


# ---------------------------------------------------------------------------
# The continued result is not mutated
# ---------------------------------------------------------------------------

def _state_snapshot(state):
    return dict(buffers=state.buffers.copy(),     # params, grad_sum, velocity, average
                global_step=state.global_step, epoch=state.epoch,
                rng=None if state.rng is None else copy.deepcopy(
                    state.rng.bit_generator.state),
                schedule_state=copy.deepcopy(state.schedule_state),
                lr_scale=state.lr_scale, best_score=state.best_score,
                no_improvement=state.no_improvement)


@pytest.mark.parametrize("method,batch_size", METHODS)
def test_continuation_does_not_mutate_the_first_result(data, backend, method, batch_size):
    X, y = data
    options = dict(method=method, batch_size=batch_size, lr=0.05, seed=5, backend=backend,
                   momentum=0.5, average=True, schedule="plateau", tol=1e-9)
    first = gdcore.fit(X, y, epochs=3, **options)
    before = _state_snapshot(first.state)
    w_before, b_before, history_before = first.w.copy(), first.b, first.history.copy()
    second = gdcore.fit(X, y, epochs=2, warm_start=first, **options)
    third = gdcore.fit(X, y, epochs=2, warm_start=first.state, **options)
    after = _state_snapshot(first.state)
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[key], value, err_msg=key)
        else:
            assert after[key] == value, key
    np.testing.assert_array_equal(first.w, w_before)
    assert first.b == b_before
    np.testing.assert_array_equal(first.history, history_before)
    # continuing twice from the same result gives the same thing twice
    np.testing.assert_array_equal(second.w, third.w)
    # and the continuation's own state is its own
    assert not np.shares_memory(second.state.params, first.state.params)


def test_result_state_is_not_shared_with_later_training(data):
    """Continuing from a result's state must not let the caller's later use of
    that state see the continuation's progress (the state is copied)."""
    X, y = data
    first = gdcore.fit(X, y, method="sgd", epochs=1, seed=0, momentum=0.5)
    state = first.state
    gdcore.fit(X, y, method="sgd", epochs=3, seed=0, momentum=0.5, warm_start=state)
    assert state.global_step == 17 and state.epoch == 1


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

def test_warm_start_with_w0_or_b0_raises(data, backend):
    X, y = data
    first = gdcore.fit(X, y, method="sgd", epochs=1, backend=backend)
    with pytest.raises(ValueError, match="warm_start"):
        gdcore.fit(X, y, method="sgd", epochs=1, w0=np.zeros(3), warm_start=first,
                   backend=backend)
    with pytest.raises(ValueError, match="warm_start"):
        gdcore.fit(X, y, method="sgd", epochs=1, b0=1.0, warm_start=first, backend=backend)


@pytest.mark.parametrize("d", [1, 2, 4])
def test_warm_start_with_other_feature_count_raises(data, backend, d):
    X, y = data
    first = gdcore.fit(X, y, method="sgd", epochs=1, backend=backend)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="feature"):
        gdcore.fit(rng.standard_normal((17, d)), y, method="sgd", epochs=1, warm_start=first,
                   backend=backend)


@pytest.mark.parametrize("bad", [np.zeros(4), {"params": np.zeros(4)}, "state", 3],
                         ids=["array", "dict", "str", "int"])
def test_warm_start_of_wrong_type_raises(data, bad):
    X, y = data
    with pytest.raises(TypeError, match="warm_start"):
        gdcore.fit(X, y, method="sgd", epochs=1, warm_start=bad)
