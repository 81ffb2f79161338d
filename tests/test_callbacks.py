"""Callbacks (after each epoch, and every ``callback_every`` steps), stopping
from a callback, ``verbose`` lines and the tqdm progress bar.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import gdcore

KEYS = {"epoch", "step", "global_step", "w", "b", "loss", "batch_loss", "history"}


@pytest.fixture(scope="module")
def data():
    X, y, _ = gdcore.make_regression(10, 2, noise=0.3, bias=0.2, seed=41)
    return X, y


class Recorder:
    """A callback that keeps (a copy of) everything it is given."""

    def __init__(self, stop_when=None):
        self.calls = []
        self.stop_when = stop_when

    def __call__(self, info):
        self.calls.append({key: (value.copy() if isinstance(value, np.ndarray) else value)
                           for key, value in info.items()})
        return self.stop_when(info) if self.stop_when else None


# ---------------------------------------------------------------------------
# After each epoch
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method,batch_size,steps", [("batch", 10, 1), ("sgd", 1, 10),
                                                     ("minibatch", 4, 3)])
def test_called_after_each_epoch_with_the_documented_dict(data, backend, method,
                                                          batch_size, steps):
    X, y = data
    options = dict(method=method, batch_size=batch_size, lr=0.05, seed=1, backend=backend,
                   momentum=0.3)
    recorder = Recorder()
    result = gdcore.fit(X, y, epochs=4, callback=recorder, **options)
    assert len(recorder.calls) == 4
    for e, info in enumerate(recorder.calls):
        assert set(info) == KEYS
        assert info["epoch"] == e
        assert info["step"] is None
        assert info["global_step"] == (e + 1) * steps
        assert info["loss"] == result.history[e]
        # no callback_every: the steps since the previous call are the epoch's
        assert info["batch_loss"] == pytest.approx(result.history[e], rel=1e-15)
        assert isinstance(info["b"], float)
        assert info["w"].shape == (2,)
        np.testing.assert_array_equal(info["history"]["loss"], result.history[:e + 1])
        np.testing.assert_array_equal(info["history"]["lr"], result.lr_history[:e + 1])
        np.testing.assert_array_equal(info["history"]["grad_norm"], result.grad_norm[:e + 1])
        # the parameters after epoch e are those of a run of e + 1 epochs
        shorter = gdcore.fit(X, y, epochs=e + 1, **options)
        np.testing.assert_array_equal(info["w"], shorter.w)
        assert info["b"] == shorter.b
    assert result.stop_reason == "max_epochs"


def test_callback_w_is_a_copy(data):
    """Modifying the w handed to the callback does not change training."""
    X, y = data

    def vandal(info):
        info["w"][:] = 1e6

    a = gdcore.fit(X, y, method="sgd", epochs=3, seed=0, callback=vandal, callback_every=2)
    b = gdcore.fit(X, y, method="sgd", epochs=3, seed=0)
    np.testing.assert_array_equal(a.w, b.w)


def test_history_includes_val_loss_with_a_split(data):
    X, y = data
    recorder = Recorder()
    result = gdcore.fit(X, y, method="sgd", epochs=3, validation_fraction=0.2, seed=0,
                        callback=recorder)
    np.testing.assert_array_equal(recorder.calls[-1]["history"]["val_loss"], result.val_loss)


@pytest.mark.parametrize("method,batch_size,steps", [("batch", 10, 1), ("sgd", 1, 10),
                                                     ("minibatch", 4, 3)])
def test_returning_true_stops(data, backend, method, batch_size, steps):
    X, y = data
    options = dict(method=method, batch_size=batch_size, lr=0.05, seed=1, backend=backend)
    recorder = Recorder(stop_when=lambda info: info["epoch"] == 2)
    result = gdcore.fit(X, y, epochs=10, callback=recorder, **options)
    assert result.stop_reason == "callback"
    assert result.epochs_run == 3 == len(result.history)
    assert result.n_steps == 3 * steps
    assert len(recorder.calls) == 3
    shorter = gdcore.fit(X, y, epochs=3, **options)
    np.testing.assert_array_equal(result.w, shorter.w)
    np.testing.assert_array_equal(result.history, shorter.history)


def test_the_epoch_call_comes_before_early_stopping(data, backend):
    """The call after an epoch comes before the early-stopping check: the
    callback sees every completed epoch, the one that stops training
    included, and a True from it wins over the stop it would have been."""
    X, y = data
    options = dict(method="sgd", lr=0.05, epochs=300, tol=1e-2, n_iter_no_change=2, seed=0,
                   backend=backend)
    recorder = Recorder()
    result = gdcore.fit(X, y, callback=recorder, **options)
    assert result.stop_reason == "tol (loss)" and result.epochs_run < 300
    assert [c["epoch"] for c in recorder.calls] == list(range(result.epochs_run))
    assert recorder.calls[-1]["loss"] == result.history[-1]
    last = result.epochs_run - 1
    stopped = gdcore.fit(X, y, callback=lambda info: info["epoch"] == last, **options)
    assert stopped.stop_reason == "callback" and stopped.epochs_run == result.epochs_run
    np.testing.assert_array_equal(stopped.w, result.w)


@pytest.mark.parametrize("value", [False, None, 1, "stop", [True], np.float64(1.0)],
                         ids=["False", "None", "one", "str", "list", "float"])
def test_only_true_stops(data, value):
    """Only True stops ("Returning True stops training"): other truthy values
    do not."""
    X, y = data
    result = gdcore.fit(X, y, method="sgd", epochs=3, seed=0, callback=lambda info: value)
    assert result.stop_reason == "max_epochs" and result.epochs_run == 3


def test_numpy_true_stops(data):
    """A callback that compares NumPy numbers returns numpy.bool_; its True is
    True (== True, bool() True) and must stop training just like Python's,
    e.g. ``lambda info: info["history"]["loss"][-1] < 10``."""
    X, y = data
    result = gdcore.fit(X, y, method="sgd", epochs=5, seed=0,
                        callback=lambda info: info["history"]["loss"][-1] < 1e9)
    assert result.stop_reason == "callback"
    assert result.epochs_run == 1


def test_exception_in_callback_propagates(data):
    X, y = data

    def boom(info):
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        gdcore.fit(X, y, method="sgd", epochs=3, callback=boom)


# ---------------------------------------------------------------------------
# Every k steps
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method,batch_size,steps", [("sgd", 1, 10), ("minibatch", 3, 4),
                                                     ("batch", 10, 1)])
@pytest.mark.parametrize("every", [1, 3, 4, 50])
def test_callback_every_k_steps(data, backend, method, batch_size, steps, every):
    """Within an epoch the callback runs after steps k, 2k, ... (< steps per
    epoch) with loss None; then once at the epoch's end with step None."""
    X, y = data
    recorder = Recorder()
    result = gdcore.fit(X, y, method=method, batch_size=batch_size, lr=0.05, epochs=2, seed=3,
                        callback=recorder, callback_every=every, backend=backend)
    expected = []
    for e in range(2):
        expected += [(e, s, e * steps + s) for s in range(every, steps, every)]
        expected.append((e, None, (e + 1) * steps))
    got = [(c["epoch"], c["step"], c["global_step"]) for c in recorder.calls]
    assert got == expected
    for call in recorder.calls:
        assert set(call) == KEYS
        assert (call["loss"] is None) == (call["step"] is not None)
    # batch_loss is the mean batch loss of the steps since the previous call:
    # weighted by those steps, the calls of an epoch add up to its loss
    for e in range(2):
        calls = [c for c in recorder.calls if c["epoch"] == e]
        done = [c["step"] if c["step"] is not None else steps for c in calls]
        counts = np.diff([0] + done)
        total = sum(c["batch_loss"] * k for c, k in zip(calls, counts, strict=True))
        assert total / steps == pytest.approx(result.history[e], rel=1e-13)


def test_mid_epoch_parameters(data, rule_fit, backend):
    """sgd in order: after step s of epoch 0 the parameters are those of one
    epoch on the first s rows, and batch_loss is the mean loss of the steps
    since the previous call (each at the parameters before its update)."""
    X, y = data
    recorder = Recorder()
    gdcore.fit(X, y, method="sgd", lr=0.05, epochs=1, shuffle=False, callback=recorder,
               callback_every=3, backend=backend)
    _, _, _, iterates = rule_fit(X, y, lr=0.05, epochs=1, batch_size=1)
    before = np.vstack([np.zeros(3), iterates])           # parameters before each step
    step_losses = (np.c_[X, np.ones(10)] @ before[:10].T).diagonal() - y
    step_losses = step_losses ** 2
    previous = 0
    for call in recorder.calls:
        s = 10 if call["step"] is None else call["step"]
        np.testing.assert_allclose(call["w"], iterates[s - 1][:2], rtol=1e-12, atol=1e-15)
        assert call["b"] == pytest.approx(iterates[s - 1][2], rel=1e-12, abs=1e-15)
        assert call["batch_loss"] == pytest.approx(step_losses[previous:s].mean(), rel=1e-12)
        assert call["history"]["loss"].shape == ((0,) if call["step"] is not None else (1,))
        previous = s
    assert [c["step"] for c in recorder.calls] == [3, 6, 9, None]


@pytest.mark.parametrize("method,batch_size", [("sgd", 1), ("minibatch", 3)])
@pytest.mark.parametrize("every", [1, 2, 7])
def test_callback_every_does_not_change_the_result(data, backend, method, batch_size, every):
    """Running an epoch in chunks (to call back) gives the same parameters,
    bit for bit, with every stateful option on (the history is a sum of the
    chunks' loss sums, so it may differ in the last bit)."""
    X, y = data
    options = dict(method=method, batch_size=batch_size, lr=0.05, epochs=3, seed=2,
                   backend=backend, momentum=0.6, nesterov=True, weight_decay=0.1, l1=0.01,
                   schedule="invscaling", average=4, sample_weight=np.arange(1.0, 11.0))
    plain = gdcore.fit(X, y, **options)
    chunked = gdcore.fit(X, y, callback=lambda info: None, callback_every=every, **options)
    np.testing.assert_array_equal(plain.w, chunked.w)
    assert plain.b == chunked.b
    np.testing.assert_allclose(plain.history, chunked.history, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(plain.grad_norm, chunked.grad_norm)


def test_stop_mid_epoch(data, numpy_fit, backend):
    """True from a mid-epoch call stops there: the parameters are those after
    that step, only complete epochs are in the history."""
    X, y = data
    recorder = Recorder(stop_when=lambda info: info["epoch"] == 1 and info["step"] == 6)
    result = gdcore.fit(X, y, method="sgd", lr=0.05, epochs=5, shuffle=False,
                        callback=recorder, callback_every=3, backend=backend)
    assert result.stop_reason == "callback"
    assert result.epochs_run == 1 and result.history.shape == (1,)
    assert result.n_steps == 16
    w, b, _ = numpy_fit(np.r_[X, X[:6]], np.r_[y, y[:6]], lr=0.05, epochs=1, batch_size=1)
    np.testing.assert_allclose(result.w, w, rtol=1e-12, atol=1e-15)
    assert result.b == pytest.approx(b, rel=1e-12, abs=1e-15)


# ---------------------------------------------------------------------------
# verbose and progress
# ---------------------------------------------------------------------------

def test_verbose_prints_one_line_per_epoch(data, backend, capsys):
    X, y = data
    result = gdcore.fit(X, y, method="sgd", lr=0.05, epochs=4, seed=0, verbose=1,
                        backend=backend)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    for e, line in enumerate(lines):
        assert line.startswith(f"epoch {e}:")
        loss = float(re.search(r"loss ([-+0-9.eE]+)", line).group(1))
        assert loss == pytest.approx(result.history[e], rel=1e-9)
        assert "lr" in line


def test_verbose_zero_prints_nothing(data, capsys):
    X, y = data
    gdcore.fit(X, y, method="sgd", epochs=3, seed=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_verbose_does_not_change_the_result(data, capsys):
    X, y = data
    a = gdcore.fit(X, y, method="sgd", epochs=3, seed=0, verbose=2)
    b = gdcore.fit(X, y, method="sgd", epochs=3, seed=0)
    np.testing.assert_array_equal(a.w, b.w)


def test_progress_bar_with_tqdm(data, backend, capsys):
    pytest.importorskip("tqdm")
    X, y = data
    options = dict(method="minibatch", batch_size=3, lr=0.05, epochs=3, seed=0,
                   backend=backend)
    with_bar = gdcore.fit(X, y, progress=True, **options)
    err = capsys.readouterr().err
    assert "gdcore" in err and "3/3" in err
    without = gdcore.fit(X, y, **options)
    np.testing.assert_array_equal(with_bar.w, without.w)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

BAD = [
    (dict(callback=3), TypeError, "callback"),
    (dict(callback="print"), TypeError, "callback"),
    (dict(callback=[print]), TypeError, "callback"),
    (dict(callback=print, callback_every=0), ValueError, "callback_every"),
    (dict(callback=print, callback_every=-2), ValueError, "callback_every"),
    (dict(callback=print, callback_every=1.5), TypeError, "callback_every"),
    (dict(callback=print, callback_every=True), TypeError, "callback_every"),
    (dict(verbose=-1), ValueError, "verbose"),
    (dict(verbose=1.0), TypeError, "verbose"),
    (dict(progress=1), TypeError, "progress"),
    (dict(progress="yes"), TypeError, "progress"),
]


@pytest.mark.parametrize("options,error,name", BAD, ids=[str(case[0]) for case in BAD])
def test_bad_options_raise_naming_them(data, options, error, name):
    X, y = data
    with pytest.raises(error, match=name):
        gdcore.fit(X, y, method="sgd", epochs=1, **options)
