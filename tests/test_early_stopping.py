"""Early stopping (``tol``, ``stop_on``, ``n_iter_no_change``), the per-epoch
gradient norm, and the held-out validation split.

The stopping epoch is checked against a replay of the documented rule on the
recorded history; the gradient norm against ``value_and_grad`` (full batch)
and a NumPy loop (sgd); the held-out rows are found from outside (changing
their targets changes nothing but ``val_loss``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import gdcore


@pytest.fixture(scope="module")
def data():
    X, y, _ = gdcore.make_regression(40, 3, noise=0.5, bias=0.3, seed=17)
    return X, y


def _replay_no_change(scores, tol, n_iter_no_change):
    """Epochs run under the documented rule: stop after n_iter_no_change
    epochs in a row whose score is not below best - tol (None: never)."""
    best, bad = math.inf, 0
    for k, score in enumerate(scores):
        if score > best - tol:
            bad += 1
        else:
            bad = 0
        best = min(best, score)
        if bad >= n_iter_no_change:
            return k + 1
    return None


def _held_out(X, y, fraction, seed):
    """Rows not trained on under this split: changing their target leaves w
    unchanged (found by trying each row)."""
    options = dict(method="batch", lr=0.05, epochs=1, validation_fraction=fraction, seed=seed)
    base = gdcore.fit(X, y, **options).w
    rows = []
    for i in range(len(y)):
        changed = y.copy()
        changed[i] += 10.0
        if np.array_equal(gdcore.fit(X, changed, **options).w, base):
            rows.append(i)
    return np.array(rows, dtype=int)


# ---------------------------------------------------------------------------
# stop_on="loss"
# ---------------------------------------------------------------------------

LOSS_CASES = [(method, size, tol, patience)
              for method, size in [("batch", 40), ("sgd", 1), ("minibatch", 7)]
              for tol, patience in [(1e-3, 3), (1e-2, 1), (0.0, 2)]
              # full batch keeps improving (by less and less) for hundreds of epochs
              if not (method == "batch" and tol == 0.0)]


@pytest.mark.parametrize("method,batch_size,tol,patience", LOSS_CASES)
def test_loss_stopping_matches_replay(data, backend, method, batch_size, tol, patience):
    X, y = data
    options = dict(method=method, batch_size=batch_size, lr=0.05, seed=1, backend=backend)
    result = gdcore.fit(X, y, epochs=300, tol=tol, n_iter_no_change=patience, **options)
    expected = _replay_no_change(result.history, tol, patience)
    assert expected is not None, "the case must stop early to test anything"
    assert result.stop_reason == "tol (loss)"
    assert result.epochs_run == expected == len(result.history) < 300
    # stopping does not change the trajectory: the history is a prefix of the full run's
    full = gdcore.fit(X, y, epochs=result.epochs_run, **options)
    assert full.stop_reason == "max_epochs"
    np.testing.assert_array_equal(result.history, full.history)
    np.testing.assert_array_equal(result.w, full.w)
    assert result.b == full.b


@pytest.mark.parametrize("method,batch_size", [("batch", 40), ("sgd", 1), ("minibatch", 7)])
def test_loss_stopping_backends_agree(assert_agree, data, method, batch_size):
    X, y = data
    options = dict(method=method, batch_size=batch_size, lr=0.05, epochs=200, tol=1e-3,
                   n_iter_no_change=2, seed=4, momentum=0.5)
    compiled = gdcore.fit(X, y, **options)
    reference = gdcore.fit(X, y, backend="reference", **options)
    assert compiled.epochs_run < 200
    assert compiled.stop_reason == "tol (loss)"
    assert_agree(compiled, reference)


def test_tol_none_never_stops(data):
    X, y = data
    result = gdcore.fit(X, y, method="batch", lr=0.05, epochs=60, n_iter_no_change=1)
    assert result.stop_reason == "max_epochs" and result.epochs_run == 60


# ---------------------------------------------------------------------------
# stop_on="grad_norm" and result.grad_norm
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("tol", [1e-1, 1e-3, 1e-6])
def test_grad_norm_stopping(data, backend, tol):
    """Stop at the first epoch whose gradient norm is <= tol."""
    X, y = data
    result = gdcore.fit(X, y, method="batch", lr=0.1, epochs=2000, tol=tol,
                        stop_on="grad_norm", backend=backend)
    assert result.stop_reason == "tol (grad_norm)"
    assert result.grad_norm[-1] <= tol
    assert np.all(result.grad_norm[:-1] > tol)
    assert result.epochs_run == len(result.grad_norm) < 2000


@pytest.mark.parametrize("loss", ["mse", "half_mse"])
@pytest.mark.parametrize("penalty", [{}, dict(weight_decay=0.3), dict(weight_decay=0.3,
                                                                      decay_bias=True),
                                     dict(weight_decay=0.2, l1=0.1, decay_bias=True)],
                         ids=["plain", "l2", "l2-bias", "elastic-bias"])
def test_batch_grad_norm_is_value_and_grad_at_epoch_start(data, backend, loss, penalty):
    """For method="batch", grad_norm[k] is the norm of the full gradient at the
    parameters the epoch started from, penalty included: (g_w + l2 w + l1
    sign(w), g_b [+ l2 b + l1 sign(b) with decay_bias])."""
    X, y = data
    l2, l1 = penalty.get("weight_decay", 0.0), penalty.get("l1", 0.0)
    bias_penalised = penalty.get("decay_bias", False)
    options = dict(method="batch", lr=0.05, loss=loss, w0=[0.5, -0.5, 0.2], b0=0.1,
                   backend=backend, **penalty)
    result = gdcore.fit(X, y, epochs=4, **options)
    for k in range(4):
        start = gdcore.fit(X, y, epochs=k, **options)
        _, gw, gb = gdcore.value_and_grad(X, y, start.w, start.b, loss=loss)
        gw = gw + l2 * start.w + l1 * np.sign(start.w)
        if bias_penalised:
            gb = gb + l2 * start.b + l1 * np.sign(start.b)
        assert result.grad_norm[k] == pytest.approx(np.linalg.norm(np.r_[gw, gb]),
                                                    rel=1e-12)


def test_batch_grad_norm_without_intercept_is_the_weights_gradient(data, backend):
    """fit_intercept=False: the intercept takes no step, its gradient is not
    used, and the norm is that of dL/dw alone."""
    X, y = data
    result = gdcore.fit(X, y, method="batch", lr=0.05, epochs=1, b0=0.5, fit_intercept=False,
                        backend=backend)
    _, gw, _ = gdcore.value_and_grad(X, y, np.zeros(3), 0.5)
    assert result.grad_norm[0] == pytest.approx(np.linalg.norm(gw), rel=1e-12)


@pytest.mark.parametrize("batch_size", [1, 7])
def test_stochastic_grad_norm_is_norm_of_mean_step_gradient(data, backend, batch_size):
    """sgd / minibatch: the norm of the mean over the epoch's steps of the
    gradient each step used."""
    X, y = data
    result = gdcore.fit(X, y, method="minibatch", batch_size=batch_size, lr=0.05, epochs=2,
                        shuffle=False, backend=backend)
    theta = np.zeros(4)
    for epoch in range(2):
        steps = []
        for start in range(0, 40, batch_size):
            A = np.c_[X[start:start + batch_size], np.ones(len(X[start:start + batch_size]))]
            r = A @ theta - y[start:start + batch_size]
            g = 2 / len(r) * A.T @ r
            steps.append(g)
            theta = theta - 0.05 * g
        assert result.grad_norm[epoch] == pytest.approx(
            np.linalg.norm(np.mean(steps, axis=0)), rel=1e-10)


# ---------------------------------------------------------------------------
# Validation split
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def split(data):
    """(training rows, held-out rows) of validation_fraction=0.2, seed=3."""
    X, y = data
    held = _held_out(X, y, 0.2, 3)
    return np.setdiff1d(np.arange(40), held), held


def test_split_holds_out_the_fraction(split):
    train, held = split
    assert len(held) == 8 and len(train) == 32


@pytest.mark.parametrize("method,batch_size", [("batch", 40), ("sgd", 1), ("minibatch", 5)])
def test_held_out_rows_are_not_trained_on(data, split, backend, method, batch_size):
    """Changing the targets of held-out rows changes val_loss, never w or b
    or the training history."""
    X, y = data
    _, held = split
    options = dict(method=method, batch_size=batch_size, lr=0.03, epochs=3,
                   validation_fraction=0.2, seed=3, backend=backend)
    base = gdcore.fit(X, y, **options)
    changed = y.copy()
    changed[held] += 5.0
    other = gdcore.fit(X, changed, **options)
    np.testing.assert_array_equal(base.w, other.w)
    assert base.b == other.b
    np.testing.assert_array_equal(base.history, other.history)
    assert np.all(base.val_loss != other.val_loss)


@pytest.mark.parametrize("loss", ["mse", "half_mse"])
def test_batch_with_split_is_training_on_the_other_rows(data, split, backend, loss):
    """Full batch with a split equals full batch on the training rows, and
    val_loss[k] is the loss of the held-out rows after epoch k."""
    X, y = data
    train, held = split
    options = dict(method="batch", lr=0.05, loss=loss, backend=backend)
    result = gdcore.fit(X, y, epochs=4, validation_fraction=0.2, seed=3, **options)
    for k in range(4):
        alone = gdcore.fit(X[train], y[train], epochs=k + 1, **options)
        if k == 3:
            np.testing.assert_allclose(result.w, alone.w, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(result.history, alone.history, rtol=1e-12)
        value = gdcore.value_and_grad(X[held], y[held], alone.w, alone.b, loss=loss)[0]
        assert result.val_loss[k] == pytest.approx(value, rel=1e-11)


@pytest.mark.parametrize("method,batch_size", [("sgd", 1), ("minibatch", 5)])
def test_shuffled_training_visits_a_permutation_of_the_training_rows(data, split, backend,
                                                                      method, batch_size):
    """sgd / minibatch with a split: shuffle=False visits the training rows in
    order, so it equals training on X[train] alone."""
    X, y = data
    train, _ = split
    options = dict(method=method, batch_size=batch_size, lr=0.03, epochs=2, shuffle=False,
                   backend=backend)
    result = gdcore.fit(X, y, validation_fraction=0.2, seed=3, **options)
    alone = gdcore.fit(X[train], y[train], **options)
    np.testing.assert_array_equal(result.w, alone.w)
    np.testing.assert_array_equal(result.history, alone.history)


def test_split_is_seeded(data, split):
    X, y = data
    _, held = split
    np.testing.assert_array_equal(_held_out(X, y, 0.2, 3), held)
    assert not np.array_equal(_held_out(X, y, 0.2, 4), held)


def test_split_with_seed_sequence_is_reproducible(data):
    """'Same seed, same bits': a SeedSequence passed as seed must give the same
    split (and so the same val_loss) on every call, like the int seed does."""
    X, y = data
    seed = np.random.SeedSequence(5)
    options = dict(method="batch", lr=0.05, epochs=2, validation_fraction=0.3, seed=seed)
    first = gdcore.fit(X, y, **options)
    second = gdcore.fit(X, y, **options)
    np.testing.assert_array_equal(first.val_loss, second.val_loss)
    np.testing.assert_array_equal(first.w, second.w)


def test_validation_stopping_matches_replay(data, backend):
    """stop_on="validation" (default fraction 0.1, at least one row) stops by
    the documented rule applied to val_loss."""
    X, y = data
    result = gdcore.fit(X, y, method="sgd", lr=0.05, epochs=300, tol=1e-3,
                        n_iter_no_change=3, stop_on="validation", seed=2, backend=backend)
    assert result.stop_reason == "tol (validation)"
    assert result.val_loss is not None and result.val_loss.shape == (result.epochs_run,)
    assert result.epochs_run == _replay_no_change(result.val_loss, 1e-3, 3) < 300
    # default fraction 0.1 of 40 rows: 4 held out
    assert len(_held_out(X, y, 0.1, 2)) == 4
    explicit = gdcore.fit(X, y, method="sgd", lr=0.05, epochs=300, tol=1e-3,
                          n_iter_no_change=3, stop_on="validation", seed=2,
                          validation_fraction=0.1, backend=backend)
    np.testing.assert_array_equal(result.val_loss, explicit.val_loss)


def test_validation_fraction_alone_records_without_stopping(data):
    X, y = data
    result = gdcore.fit(X, y, method="sgd", lr=0.05, epochs=5, validation_fraction=0.25,
                        seed=0)
    assert result.stop_reason == "max_epochs"
    assert result.val_loss.shape == (5,) and np.isfinite(result.val_loss).all()
    assert gdcore.fit(X, y, method="sgd", epochs=2).val_loss is None


def test_at_least_one_row_is_held_out():
    X, y, _ = gdcore.make_regression(6, 1, noise=0.1, seed=0)
    assert len(_held_out(X, y, 0.01, 1)) == 1


def test_validation_backends_agree(assert_agree, data):
    X, y = data
    options = dict(method="minibatch", batch_size=6, lr=0.05, epochs=100, tol=1e-4,
                   n_iter_no_change=2, stop_on="validation", validation_fraction=0.3,
                   seed=8, momentum=0.3)
    compiled = gdcore.fit(X, y, **options)
    reference = gdcore.fit(X, y, backend="reference", **options)
    assert compiled.stop_reason == "tol (validation)" and compiled.val_loss is not None
    assert_agree(compiled, reference)                  # val_loss and epochs_run included


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

BAD = [
    (dict(tol=-1e-3), ValueError, "tol"),
    (dict(tol=float("nan")), ValueError, "tol"),
    (dict(tol="small"), TypeError, "tol"),
    (dict(tol=1e-3, stop_on="val"), ValueError, "stop_on"),
    (dict(stop_on=None), TypeError, "stop_on"),
    (dict(stop_on="Loss"), ValueError, "stop_on"),
    (dict(n_iter_no_change=0), ValueError, "n_iter_no_change"),
    (dict(n_iter_no_change=-3), ValueError, "n_iter_no_change"),
    (dict(n_iter_no_change=2.0), TypeError, "n_iter_no_change"),
    (dict(n_iter_no_change=True), TypeError, "n_iter_no_change"),
    (dict(validation_fraction=0.0), ValueError, "validation_fraction"),
    (dict(validation_fraction=1.0), ValueError, "validation_fraction"),
    (dict(validation_fraction=-0.2), ValueError, "validation_fraction"),
    (dict(validation_fraction=1.5), ValueError, "validation_fraction"),
    (dict(validation_fraction=float("nan")), ValueError, "validation_fraction"),
    (dict(validation_fraction="0.1"), TypeError, "validation_fraction"),
    (dict(stop_on="validation", validation_fraction=0.0), ValueError, "validation_fraction"),
]


@pytest.mark.parametrize("options,error,name", BAD, ids=[str(case[0]) for case in BAD])
def test_bad_options_raise_naming_them(data, backend, options, error, name):
    X, y = data
    with pytest.raises(error, match=name):
        gdcore.fit(X, y, method="sgd", epochs=1, backend=backend, **options)


def test_split_that_leaves_nothing_to_train_on_raises():
    X, y = np.array([[1.0], [2.0]]), np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="validation_fraction"):
        gdcore.fit(X, y, epochs=1, validation_fraction=0.9)
