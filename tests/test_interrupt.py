"""Ctrl-C within 0.2 s in every long call.

The compiled kernels release the GIL for a whole epoch or pass over X; they
look at signals every few MB of X read and stop when a handler raises. Each
call below runs, in a subprocess, on an X too large to finish before the
SIGINT that a timer thread sends 0.1 s after the call starts: the call must
raise KeyboardInterrupt within 0.2 s of the signal. (Drawing a permutation of
the rows -- shuffling, a validation split -- is NumPy's and does not look at
signals: about 25 ms per million rows.) X is a memory map of a
sparse file (zeros): large, yet free to make.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

#: The longest a call may take to raise KeyboardInterrupt after SIGINT.
LATENCY = 0.2
CALLS = ["fit sgd", "fit minibatch", "fit batch", "value_and_grad", "max_stable_lr",
         "loss_grid", "loss_surface", "held-out loss", "make_regression",
         "make_regression_npy"]

SCRIPT = textwrap.dedent("""
    import json, os, signal, sys, tempfile, threading, time
    import numpy as np
    import gdcore

    n, d = int(sys.argv[2]), int(sys.argv[3])
    X = np.memmap(sys.argv[1], dtype=np.float64, mode="r", shape=(n, d))
    y = np.zeros(n)
    w0 = np.zeros(d)
    all_rows = np.arange(n)
    # one feature: the same file seen as a column (a view, not a copy)
    x1 = X.reshape(-1, 1)[:n * 5]
    y1 = np.zeros(x1.shape[0])
    calls = {
        "fit sgd": lambda: gdcore.fit(X, y, method="sgd", epochs=1, shuffle=False, w0=w0),
        "fit minibatch": lambda: gdcore.fit(X, y, method="minibatch", epochs=1,
                                            shuffle=False, w0=w0),
        "fit batch": lambda: gdcore.fit(X, y, method="batch", epochs=20, w0=w0),
        "value_and_grad": lambda: gdcore.value_and_grad(X, y, w0, n_threads=1),
        "max_stable_lr": lambda: gdcore.max_stable_lr(X, n_threads=1),
        "loss_grid": lambda: gdcore.loss_grid(x1, y1, np.zeros(4000), n_threads=1),
        "loss_surface": lambda: gdcore.loss_surface(x1, y1, np.zeros(50), np.zeros(80)),
        # the loss over held-out rows, called as fit calls it after each epoch
        "held-out loss": lambda: gdcore._dispatch.kernels.subset_loss(
            X, y.reshape(-1, 1), all_rows, np.zeros(d + 1), 1.0),
        "make_regression": lambda: gdcore.make_regression(n // 3, d, seed=0),
        "make_regression_npy": lambda: gdcore.make_regression_npy(
            os.path.join(folder, "X.npy"), os.path.join(folder, "y.npy"), n // 3, d, seed=0),
    }
    # make_regression_npy interrupted: the X.npy that was there is kept as it
    # was, and nothing else is left
    folder = tempfile.mkdtemp()
    np.save(os.path.join(folder, "X.npy"), np.arange(3.0))
    results = {}
    for name in sys.argv[4:]:
        fired = []
        def fire():
            time.sleep(0.1)
            fired.append(time.perf_counter())
            os.kill(os.getpid(), signal.SIGINT)
        timer = threading.Thread(target=fire)
        timer.start()
        try:
            calls[name]()
            outcome = "finished"
        except KeyboardInterrupt:
            outcome = time.perf_counter() - fired[0]
        timer.join()
        results[name] = outcome
    assert np.all(w0 == 0.0)        # nothing the caller passed in was changed
    assert os.listdir(folder) == ["X.npy"]
    assert np.array_equal(np.load(os.path.join(folder, "X.npy")), np.arange(3.0))
    # and the kernels work as before after an interruption
    gdcore.fit(np.ones((100, 3)), np.ones(100), epochs=2)
    print(json.dumps(results))
""")


@pytest.fixture(scope="module")
def sparse_X(tmp_path_factory):
    """A 2.4 GB file of zeros that takes no disk space (n = 12M rows of d = 25)."""
    n, d = 12_000_000, 25
    path = tmp_path_factory.mktemp("interrupt") / "X.bin"
    with open(path, "wb") as handle:
        handle.truncate(n * d * 8)
    return str(path), n, d


def _default_sigint() -> None:
    """In the child: Ctrl-C raises KeyboardInterrupt again, even when the tests
    run from a shell that started them with SIGINT ignored (a background job
    of a non-interactive shell), which the child would inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_every_long_call_stops_within_latency(sparse_X):
    path, n, d = sparse_X
    done = subprocess.run([sys.executable, "-c", SCRIPT, path, str(n), str(d), *CALLS],
                          capture_output=True, text=True, timeout=300,
                          preexec_fn=_default_sigint)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for name in CALLS:
        assert results[name] != "finished", f"{name} ended before the signal: make X larger"
        assert results[name] < LATENCY, f"{name}: {results[name]:.3f} s after SIGINT"


@pytest.mark.parametrize("command", ["train", "timing table"])
def test_command_line_interrupted_is_one_line_and_exit_130(tmp_path, command):
    """Ctrl-C during `train` or the timing table: one line on stderr, status
    130, no output file."""
    out = tmp_path / "model.json"
    args = (["train", "--method", "sgd", "--lr", "1e-4", "-o", str(out)]
            if command == "train" else ["--method", "sgd"])
    process = subprocess.Popen([sys.executable, "-m", "gdcore", *args, "-n", "2000000",
                                "-d", "20", "--epochs", "1000"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_default_sigint)
    # wait for training to start (the data line is printed first)
    assert process.stdout is not None
    first = process.stdout.readline()
    assert first.startswith("data:"), first
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    name = "python -m gdcore train" if command == "train" else "python -m gdcore"
    assert stderr.strip().splitlines() == [f"{name}: interrupted"]
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_interrupted_fit_leaves_the_warm_start_state_as_it_was():
    """The kernel stops without copying its working state back: the state
    that fit was continuing from is untouched, and fit can continue it."""
    X, y, _ = np.ones((50, 2)), np.ones(50), None
    import gdcore

    first = gdcore.fit(X, y, method="sgd", epochs=1, seed=0)
    before = first.state.buffers.copy()

    def stop(info):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        gdcore.fit(X, y, method="sgd", epochs=3, seed=0, warm_start=first, callback=stop,
                   callback_every=7)
    np.testing.assert_array_equal(first.state.buffers, before)
    again = gdcore.fit(X, y, method="sgd", epochs=3, seed=0, warm_start=first)
    assert again.epochs_run == 3
