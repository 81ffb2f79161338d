"""A process forked after gdcore's kernels started threads still trains.

GNU OpenMP's thread pool does not survive ``fork()``: a child that starts a
team waits for it for ever. gdcore then runs the child's passes on one thread
(``_dispatch.threads``); the results are the same bits (they never depend on
the thread count).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import gdcore
    X = np.random.default_rng(0).standard_normal((100_000, 3))
    y = X.sum(1)
    def runs():
        return [gdcore.fit(X, y, method=m, lr=1e-3, epochs=1, seed=0, n_threads=2).w
                for m in ("sgd", "minibatch", "batch")] + [
                gdcore.value_and_grad(X, y, np.ones(3), 0.5, n_threads=2)[1]]
    parent = runs()                       # the kernels start their threads here
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        signal.alarm(20)                  # a hang ends the child with SIGALRM
        same = all(np.array_equal(a, b) for a, b in zip(runs(), parent))
        os.write(write, b"same" if same else b"different")
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    said = os.read(read, 100).decode()
    print(said if os.WIFEXITED(status) else f"killed by signal {os.WTERMSIG(status)}")
    print("parent again", all(np.array_equal(a, b) for a, b in zip(runs(), parent)))
""")


def test_a_forked_child_trains_on_one_thread_with_the_same_bits():
    pytest.importorskip("gdcore._kernels")
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["same", "parent again True"], done.stdout
