"""Whole epochs in one compiled call (``kernels.run_epochs``).

When nothing in Python has to run between epochs (no callback, feedback,
held-out loss, checkpoint, best-epoch record or plateau schedule), the
training loop hands a block of epochs to the kernels. The result must be
the bits of the loop that runs one epoch at a time, which a callback that
never stops training forces: every option, early stopping, divergence, warm
starts and the generator's state after the run included.
"""

from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import gdcore
from gdcore import _engines, _orders, _training, optimizers, schedules


def _one_at_a_time(info):
    """A callback that never stops training: it makes the loop run epoch by epoch."""
    return None


@pytest.fixture(params=["one block", "blocks drawn ahead"])
def order_blocks(request, monkeypatch):
    """Run the multi-epoch calls as they are, or with blocks of orders so small
    (two epochs of 30 or 40 rows) that every run takes many of them, each
    drawn on the second thread while the one before trains; yields the
    number of drawing threads started."""
    started = []
    if request.param == "blocks drawn ahead":
        monkeypatch.setattr(_engines, "ORDER_BLOCK_BYTES", 2 * 8 * 40)
        monkeypatch.setattr(_engines, "AHEAD_BLOCK_BYTES", 2 * 8 * 40)
        original = _orders.Ahead.__init__

        def counted(self, *args, **kwargs):
            started.append(args)
            original(self, *args, **kwargs)
        monkeypatch.setattr(_orders.Ahead, "__init__", counted)
    yield started


@pytest.mark.parametrize("n", [1, 2, 3, 16, 442, 5000])
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_orders_drawn_at_once_are_the_shuffles_one_by_one(n, seed):
    one_by_one = np.random.default_rng(seed)
    expected = []
    for _ in range(9):
        order = np.arange(n, dtype=np.intp)
        one_by_one.shuffle(order)
        expected.append(order)
    at_once = np.random.default_rng(seed)
    orders = _orders.draw(at_once, 9, n)
    np.testing.assert_array_equal(orders, np.array(expected))
    assert at_once.bit_generator.state == one_by_one.bit_generator.state


CASES = {
    "plain": dict(),
    "no shuffle": dict(shuffle=False),
    "momentum": dict(momentum=0.9),
    "nesterov dampening-free": dict(momentum=0.5, nesterov=True),
    "penalties": dict(weight_decay=0.1, l1=0.01, decay_bias=True, momentum=0.2),
    "proximal": dict(l1=0.05, l1_method="proximal"),
    "cumulative": dict(l1=0.05, l1_method="cumulative"),
    "adam": dict(optimizer=optimizers.Adam(amsgrad=True), weight_decay=0.01),
    "rmsprop": dict(optimizer="rmsprop", momentum=0.3),
    "average": dict(average=5),
    "invscaling": dict(schedule="invscaling"),
    "exponential": dict(schedule=schedules.Exponential(gamma=0.9)),
    "step": dict(schedule=schedules.StepDecay(step_size=3, gamma=0.5)),
    "tol loss": dict(tol=1e-3, n_iter_no_change=2),
    "tol grad_norm": dict(tol=1e-2, stop_on="grad_norm"),
    "weights": dict(sample_weight=np.linspace(0.2, 3.0, 30), momentum=0.4),
    "standardize auto": dict(standardize=True, lr="auto"),
    "many outputs": dict(momentum=0.3, y="many"),
}


@pytest.mark.parametrize("method,batch_size", [("sgd", 1), ("minibatch", 4),
                                               ("minibatch", 30), ("batch", 1)])
@pytest.mark.parametrize("case", list(CASES))
def test_a_block_of_epochs_is_the_epochs_one_by_one(method, batch_size, case, order_blocks):
    X, y, _ = gdcore.make_regression(30, 3, noise=0.3, bias=0.5, seed=4)
    options = dict(CASES[case])
    if options.pop("y", None) == "many":
        y = np.c_[y, 1 - 2 * y]
    options = dict(dict(method=method, batch_size=batch_size, epochs=25, seed=3,
                        lr=0.05 if method != "sgd" else 0.01, n_threads=2), **options)
    fast = gdcore.fit(X, y, **options)
    drawn_ahead = bool(order_blocks)
    slow = gdcore.fit(X, y, callback=_one_at_a_time, **options)
    assert drawn_ahead == (bool(order_blocks) and options.get("shuffle", True)
                           and batch_size < 30 and method != "batch")
    np.testing.assert_array_equal(fast.w, slow.w)
    np.testing.assert_array_equal(fast.b, slow.b)
    for name in ("history", "grad_norm", "lr_history"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name), name)
    assert (fast.stop_reason, fast.n_steps, fast.epochs_run) == \
        (slow.stop_reason, slow.n_steps, slow.epochs_run)
    np.testing.assert_array_equal(fast.state.buffers, slow.state.buffers)
    assert fast.state.l1_total == slow.state.l1_total
    assert (fast.state.best_score, fast.state.no_improvement) == \
        (slow.state.best_score, slow.state.no_improvement)
    if fast.state.rng is not None:
        assert fast.state.rng.bit_generator.state == slow.state.rng.bit_generator.state


@pytest.mark.parametrize("on_divergence", ["stop", "halve", "raise"])
@pytest.mark.parametrize("method", ["sgd", "minibatch", "batch"])
def test_a_diverging_epoch_is_handed_back_to_the_loop(on_divergence, method, order_blocks):
    X, y, _ = gdcore.make_regression(40, 3, noise=0.1, seed=2)
    options = dict(method=method, batch_size=8, lr=3.0 if method == "sgd" else 100.0,
                   epochs=400, seed=1, on_divergence=on_divergence, n_threads=2)
    outcomes, warned = [], []
    for extra in ({}, {"callback": _one_at_a_time}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                outcomes.append(gdcore.fit(X, y, **options, **extra))
            except gdcore.DivergenceError as error:
                outcomes.append(error)
        warned.append([str(w.message) for w in caught])
    fast, slow = outcomes
    assert type(fast) is type(slow) and warned[0] == warned[1]
    np.testing.assert_array_equal(fast.w, slow.w)
    np.testing.assert_array_equal(fast.history, slow.history)
    if isinstance(fast, gdcore.FitResult):
        assert fast.stop_reason == slow.stop_reason
        np.testing.assert_array_equal(fast.lr_history, slow.lr_history)
    else:
        assert str(fast) == str(slow)


def test_warm_start_of_blocks_continues_exactly(order_blocks):
    X, y, _ = gdcore.make_regression(25, 2, seed=5)
    options = dict(method="sgd", lr=0.01, momentum=0.8, seed=9, n_threads=2)
    whole = gdcore.fit(X, y, epochs=500, **options)
    first = gdcore.fit(X, y, epochs=123, **options)
    more = gdcore.fit(X, y, epochs=377, warm_start=first, **options)
    np.testing.assert_array_equal(more.w, whole.w)
    np.testing.assert_array_equal(np.r_[first.history, more.history], whole.history)
    assert more.state.rng.bit_generator.state == whole.state.rng.bit_generator.state


def test_one_thread_draws_the_orders_itself(order_blocks):
    X, y, _ = gdcore.make_regression(40, 2, seed=5)
    ahead = gdcore.fit(X, y, method="sgd", lr=0.01, epochs=50, seed=2, n_threads=2)
    threads = len(order_blocks)
    alone = gdcore.fit(X, y, method="sgd", lr=0.01, epochs=50, seed=2, n_threads=1)
    assert len(order_blocks) == threads            # no drawing thread for n_threads=1
    np.testing.assert_array_equal(ahead.w, alone.w)
    assert ahead.state.rng.bit_generator.state == alone.state.rng.bit_generator.state


def _threads_now():
    """Python threads running now, once the count has been steady for 50 ms
    (threads of earlier tests may still be ending)."""
    count, steady_since = _thread._count(), time.monotonic()
    deadline = steady_since + 1.0
    while time.monotonic() < deadline and time.monotonic() - steady_since < 0.05:
        time.sleep(0.005)
        if _thread._count() != count:
            count, steady_since = _thread._count(), time.monotonic()
    return count


def _no_drawing_thread_left(baseline):
    """Whether the Python threads are back to ``baseline`` within a second
    (the drawing thread ends by itself)."""
    deadline = time.monotonic() + 1.0
    while _thread._count() > baseline and time.monotonic() < deadline:
        time.sleep(0.005)
    return _thread._count() <= baseline


def test_a_failing_draw_is_raised_and_leaves_no_thread(monkeypatch):
    monkeypatch.setattr(_engines, "AHEAD_BLOCK_BYTES", 2 * 8 * 40)
    baseline, main = _threads_now(), threading.get_ident()
    calls = []
    draw = _orders.draw

    def failing(rng, epochs, n, out=None):
        calls.append(threading.get_ident())
        if len(calls) == 3:
            raise MemoryError("no room for the orders")
        return draw(rng, epochs, n, out)
    monkeypatch.setattr(_orders, "draw", failing)
    X, y, _ = gdcore.make_regression(40, 2, seed=5)
    with pytest.raises(MemoryError, match="no room"):
        gdcore.fit(X, y, method="sgd", lr=0.01, epochs=50, seed=2, n_threads=2)
    assert calls[2] != main
    assert _no_drawing_thread_left(baseline)


def _shuffles(seed, epochs, n):
    """The state of default_rng(seed) after ``epochs`` shuffles of 0..n-1."""
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        rng.shuffle(np.arange(n))
    return rng.bit_generator.state


@pytest.mark.parametrize("threads", [2, 1])
def test_ctrl_c_in_a_block_leaves_the_generator_after_the_epochs_kept(monkeypatch, threads):
    """Ctrl-C in the third compiled call (blocks of two epochs) leaves the
    parameters as after four epochs, and a caller's generator as after
    those four epochs' draws, whatever the drawing thread drew beyond."""
    monkeypatch.setattr(_engines, "AHEAD_BLOCK_BYTES", 2 * 8 * 40)
    monkeypatch.setattr(_engines, "ORDER_BLOCK_BYTES", 2 * 8 * 40)
    original, calls = _engines.CythonTrainer._run_block, []

    def interrupted(self, state, orders, epochs, lr, stopping):
        calls.append(epochs)
        if len(calls) == 3:
            time.sleep(0.05)            # the drawing thread runs ahead meanwhile
            raise KeyboardInterrupt
        return original(self, state, orders, epochs, lr, stopping)
    monkeypatch.setattr(_engines.CythonTrainer, "_run_block", interrupted)
    baseline = _threads_now()
    X, y, _ = gdcore.make_regression(40, 2, seed=5)
    generator = np.random.default_rng(2)
    with pytest.raises(KeyboardInterrupt):
        gdcore.fit(X, y, method="sgd", lr=0.01, epochs=50, seed=generator, n_threads=threads)
    assert generator.bit_generator.state == _shuffles(2, 4, 40)
    assert _no_drawing_thread_left(baseline)


@pytest.mark.parametrize("options", [dict(method="sgd", n_threads=2),
                                     dict(method="sgd", shuffle=False),
                                     dict(method="minibatch", batch_size=8, n_threads=1),
                                     dict(method="batch")])
def test_a_huge_number_of_epochs_costs_nothing_up_front(monkeypatch, options):
    monkeypatch.setattr(_engines, "AHEAD_BLOCK_BYTES", 2 * 8 * 40)
    X, y, _ = gdcore.make_regression(40, 2, seed=5)
    started = time.perf_counter()
    result = gdcore.fit(X, y, lr=0.01, epochs=10**12, seed=2, tol=1e9, n_iter_no_change=3,
                        **options)
    assert result.stop_reason == "tol (loss)" and result.epochs_run == 4
    assert time.perf_counter() - started < 5.0


def test_more_epochs_than_one_call_runs_give_the_same_bits(monkeypatch):
    X, y, _ = gdcore.make_regression(30, 3, seed=4)
    options = dict(method="sgd", lr=0.01, epochs=50, seed=3, n_threads=2)
    whole = gdcore.fit(X, y, **options)
    monkeypatch.setattr(_training, "MAX_BLOCK_EPOCHS", 7)
    cut = gdcore.fit(X, y, **options)
    np.testing.assert_array_equal(cut.w, whole.w)
    np.testing.assert_array_equal(cut.history, whole.history)


def test_the_thread_draws_from_a_copy_of_the_generator():
    rng, fresh = np.random.default_rng(7), np.random.default_rng(7)
    before = rng.bit_generator.state
    baseline = _threads_now()
    ahead = _orders.Ahead(rng, 5, 12, 3)
    blocks = [ahead.next() for _ in range(2)]
    ahead.close()
    assert rng.bit_generator.state == before        # untouched: the thread has a copy
    assert ahead.start == before
    np.testing.assert_array_equal(np.r_[blocks[0][1], blocks[1][1]], _orders.draw(fresh, 6, 5))
    assert blocks[0][2] == blocks[1][0]             # each block starts where the last ended
    assert blocks[1][2] == fresh.bit_generator.state
    assert _no_drawing_thread_left(baseline)


def test_without_a_copy_of_the_generator_the_run_draws_itself(monkeypatch):
    monkeypatch.setattr(_engines, "AHEAD_BLOCK_BYTES", 2 * 8 * 40)

    refused = []

    class NoCopies:                     # _orders' view of the copy module
        @staticmethod
        def deepcopy(value):
            refused.append(value)
            raise TypeError("cannot pickle this generator")
    monkeypatch.setattr(_orders, "copy", NoCopies)
    X, y, _ = gdcore.make_regression(40, 2, seed=5)
    ahead = gdcore.fit(X, y, method="sgd", lr=0.01, epochs=30, seed=4, n_threads=2)
    assert refused                      # it tried, and trained without the thread
    alone = gdcore.fit(X, y, method="sgd", lr=0.01, epochs=30, seed=4, n_threads=1)
    np.testing.assert_array_equal(ahead.w, alone.w)
    np.testing.assert_array_equal(ahead.history, alone.history)
    assert ahead.state.rng.bit_generator.state == alone.state.rng.bit_generator.state


def test_a_consumer_that_goes_away_stops_the_thread():
    baseline = _threads_now()
    ahead = _orders.Ahead(np.random.default_rng(1), 50, 10**9, 4)
    ahead.next()
    del ahead                           # never closed: an interrupted consumer
    assert _no_drawing_thread_left(baseline)


def test_ctrl_c_stops_a_long_run_of_tiny_epochs_at_once(tmp_path):
    """20 million epochs of 3 samples (minutes of work): SIGINT ends it in
    well under 0.2 s with KeyboardInterrupt."""
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, time, numpy as np, gdcore\n"
        "X = np.array([[1.0], [2.0], [3.0]]); y = np.array([1.0, 2.0, 2.5])\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    gdcore.fit(X, y, method='sgd', lr=0.01, epochs=20_000_000, seed=0)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', time.perf_counter(), flush=True)\n")
    # SIGINT back to its default in the child, in case this runs with it ignored
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                               text=True, preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                           signal.SIG_DFL))
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    sent = time.perf_counter()
    os.kill(process.pid, signal.SIGINT)
    line = process.stdout.readline().split()
    process.wait(timeout=30)
    assert line[0] == "interrupted"
    assert float(line[1]) - sent < 0.2
