"""Thread safety and reproducibility.

* 8 Python threads training different models on one shared, read-only X get
  the same bits as the same calls made one after the other: the kernels
  release the GIL and hold no global state (every buffer is per call).
* The same call with the same seed gives the same bits on every run (in fresh
  processes too), for any ``n_threads``, any ``OMP_NUM_THREADS`` /
  ``OPENBLAS_NUM_THREADS`` and any kernel variant the CPU can run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import gdcore
from gdcore import _dispatch

N_THREADS = 8


@pytest.fixture(scope="module")
def shared():
    X, y, _ = gdcore.make_regression(6000, 12, noise=0.5, bias=0.7, seed=11)
    X.flags.writeable = False
    y.flags.writeable = False
    return X, y


def _jobs():
    """Eight different training runs (method, batch size, rate, loss, seed...)."""
    return [
        dict(method="batch", lr=0.1, epochs=6, n_threads=2),
        dict(method="sgd", lr=0.002, epochs=2, seed=1),
        dict(method="minibatch", batch_size=32, lr=0.02, epochs=3, seed=2),
        dict(method="minibatch", batch_size=7, lr=0.01, epochs=2, seed=3, loss="half_mse"),
        dict(method="sgd", lr=0.001, epochs=2, shuffle=False, fit_intercept=False, b0=-1.0),
        dict(method="batch", lr=0.05, epochs=8, loss="half_mse", n_threads=1),
        dict(method="minibatch", batch_size=500, lr=0.05, epochs=4, seed=4,
             w0=np.full(12, 0.3)),
        dict(method="minibatch", batch_size=64, lr=10.0, epochs=3, seed=5),  # diverges
    ]


def _run(X, y, job):
    try:
        result = gdcore.fit(X, y, **job)
        return ("ok", result.w.tobytes(), result.b, result.history.tobytes())
    except gdcore.DivergenceError as err:
        return ("diverged", err.w.tobytes(), err.b, err.epoch, err.step)


def _in_threads(function, arguments, repeat=1):
    """Run ``function(*args)`` for every args in ``arguments``, all at once, in
    one thread each, ``repeat`` times; return the results in order."""
    results = [[None] * len(arguments) for _ in range(repeat)]
    errors = []
    barrier = threading.Barrier(len(arguments))

    def worker(k, args):
        try:
            barrier.wait()
            for r in range(repeat):
                results[r][k] = function(*args)
        except BaseException as exc:    # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k, args))
               for k, args in enumerate(arguments)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert not errors, errors
    return results


def test_eight_threads_training_different_models_match_serial_runs(shared):
    X, y = shared
    jobs = _jobs()
    assert len(jobs) == N_THREADS
    serial = [_run(X, y, job) for job in jobs]
    assert serial[-1][0] == "diverged" and serial[0][0] == "ok"
    for round_results in _in_threads(_run, [(X, y, job) for job in jobs], repeat=3):
        assert round_results == serial


def test_eight_threads_same_model_same_bits(shared):
    X, y = shared
    job = dict(method="minibatch", batch_size=16, lr=0.01, epochs=2, seed=42)
    serial = _run(X, y, job)
    for round_results in _in_threads(_run, [(X, y, job)] * N_THREADS, repeat=2):
        assert all(result == serial for result in round_results)


def _value_and_grad(X, y, w, b, n_threads, backend="cython"):
    loss, grad_w, grad_b = gdcore.value_and_grad(X, y, w, b, n_threads=n_threads,
                                                 backend=backend)
    return loss, grad_w.tobytes(), grad_b


def test_concurrent_value_and_grad_with_different_thread_counts(shared):
    X, y = shared
    rng = np.random.default_rng(0)
    calls = [(X, y, rng.standard_normal(12), float(k), 1 + k % 4)
             for k in range(N_THREADS)]
    serial = [_value_and_grad(*args) for args in calls]
    for round_results in _in_threads(_value_and_grad, calls, repeat=5):
        assert round_results == serial


def test_bad_input_in_one_thread_does_not_disturb_the_others(shared):
    """A NaN in one thread's data raises ValueError there; the other threads'
    results are unaffected (no state is shared between calls)."""
    X, y = shared
    X_bad = np.array(X)
    X_bad[100, 3] = np.nan
    job = dict(method="minibatch", batch_size=32, lr=0.01, epochs=1, seed=9)

    def guarded(X_k):
        try:
            return _run(X_k, y, job)
        except ValueError as exc:
            return ("ValueError", str(exc))

    serial_good = _run(X, y, job)
    arguments = [(X_bad if k % 2 else X,) for k in range(N_THREADS)]
    for round_results in _in_threads(guarded, arguments, repeat=2):
        for k, result in enumerate(round_results):
            if k % 2:
                assert result[0] == "ValueError" and "(100, 3)" in result[1]
            else:
                assert result == serial_good


def test_concurrent_make_regression_and_estimators():
    def make(seed):
        X, y, w = gdcore.make_regression(70_000, 3, noise=0.1, seed=seed)
        model = gdcore.LinearRegressor(method="sgd", lr=0.001, epochs=1, seed=seed)
        model.fit(X[:5000], y[:5000])
        return X.tobytes(), y.tobytes(), w.tobytes(), model.coef_.tobytes()

    serial = [make(seed) for seed in range(4)]
    for round_results in _in_threads(make, [(seed,) for seed in range(4)]):
        assert round_results == serial


def test_reference_backend_in_threads(shared):
    X, y = shared
    X_small, y_small = X[:60], y[:60]
    job = dict(method="minibatch", batch_size=8, lr=0.01, epochs=2, seed=1,
               backend="reference")
    serial = _run(X_small, y_small, job)
    for round_results in _in_threads(_run, [(X_small, y_small, job)] * 4):
        assert all(result == serial for result in round_results)


# ---------------------------------------------------------------------------
# Reproducibility
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["batch", "sgd", "minibatch"])
def test_same_bits_for_any_n_threads(shared, method):
    X, y = shared
    options = dict(method=method, batch_size=50, lr=0.005, epochs=2, seed=3)
    results = {n: _run(X, y, dict(options, n_threads=n)) for n in (1, 2, 3, 8, 64)}
    assert len(set(results.values())) == 1
    grads = {n: _value_and_grad(X, y, np.ones(12), 0.5, n) for n in (1, 2, 5, 1024)}
    assert len(set(grads.values())) == 1


def test_same_seed_same_bits_repeated_calls(shared):
    X, y = shared
    options = dict(method="minibatch", batch_size=10, lr=0.01, epochs=3, seed=123)
    assert _run(X, y, options) == _run(X, y, options)
    seed = np.random.SeedSequence(5)
    assert _run(X, y, dict(options, seed=seed)) == _run(X, y, dict(options, seed=seed))


_SCRIPT = r"""
import hashlib, json, sys
import numpy as np
import gdcore

X, y, w_true = gdcore.make_regression(70_000, 9, noise=0.3, bias=0.5, seed=2)
digest = hashlib.sha256()
for array in (X, y, w_true):
    digest.update(array.tobytes())
for method in ("batch", "sgd", "minibatch"):
    result = gdcore.fit(X, y, method=method, batch_size=32, lr=0.003, epochs=2, seed=7)
    digest.update(result.w.tobytes() + np.float64(result.b).tobytes()
                  + result.history.tobytes())
loss, grad_w, grad_b = gdcore.value_and_grad(X, y, w_true, 0.1)
digest.update(np.array([loss, grad_b]).tobytes() + grad_w.tobytes())
print(json.dumps({"kernels": gdcore.KERNELS, "digest": digest.hexdigest()}))
"""


def _digest_in_subprocess(**env):
    environment = dict(os.environ, **env)
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=environment,
                         capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout)


def test_same_bits_across_processes_thread_counts_and_kernel_variants():
    """Fresh processes with different OpenMP / BLAS thread counts and every
    kernel variant this CPU runs produce byte-identical data and results."""
    runs = [
        _digest_in_subprocess(),
        _digest_in_subprocess(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"),
        _digest_in_subprocess(OMP_NUM_THREADS="3", OPENBLAS_NUM_THREADS="2"),
    ]
    for variant in _dispatch.available():
        runs.append(_digest_in_subprocess(GDCORE_KERNELS=variant))
    assert {run["kernels"] for run in runs[-len(_dispatch.available()):]} == \
        set(_dispatch.available())
    assert len({run["digest"] for run in runs}) == 1, runs


def _immutable(value):
    if isinstance(value, tuple):
        return all(_immutable(item) for item in value)
    return isinstance(value, (bool, int, float, str))


def test_the_kernels_module_has_no_mutable_module_state():
    """The compiled modules expose functions, classes and immutable constants
    only (numbers, strings, tuples of them): nothing a call could leave behind
    for the next one."""
    for name in _dispatch.available():
        for kind in ("kernels", "landscape"):
            module = _dispatch.load(name, kind)
            for attribute in dir(module):
                if attribute.startswith("__"):
                    continue
                value = getattr(module, attribute)
                assert callable(value) or _immutable(value), (name, kind, attribute,
                                                              type(value))
