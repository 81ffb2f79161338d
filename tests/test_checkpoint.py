"""Checkpoints: a run interrupted anywhere resumes to the bits of a run that
was never interrupted; a checkpoint from other options or data is refused;
the file is always whole."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import gdcore
from gdcore import optimizers, schedules

#: Every option set the resume must reproduce exactly.
RUNS = {
    "sgd": dict(method="sgd", lr=0.01, epochs=4, seed=1),
    "minibatch momentum": dict(method="minibatch", batch_size=7, lr=0.02, epochs=4,
                               momentum=0.9, seed=2),
    "batch plateau": dict(method="batch", lr=0.1, epochs=6,
                          schedule=schedules.Plateau(factor=2, patience=1), seed=3),
    "nesterov split": dict(method="minibatch", batch_size=5, lr=0.01, epochs=5,
                           momentum=0.5, nesterov=True, validation_fraction=0.2, seed=9),
    "weights average": dict(method="sgd", lr=0.01, epochs=3, average=True,
                            schedule="invscaling", seed=4),
    "shuffle off early stop": dict(method="minibatch", batch_size=9, lr=0.05, epochs=30,
                                   shuffle=False, tol=1e-4, stop_on="loss"),
    "adam proximal": dict(method="minibatch", batch_size=6, lr=0.01, epochs=4,
                          optimizer=optimizers.Adam(amsgrad=True), l1=0.02,
                          l1_method="proximal", seed=5),
    "rmsprop cumulative": dict(method="sgd", lr=0.001, epochs=3, optimizer="rmsprop",
                               l1=0.01, l1_method="cumulative", seed=6),
    "standardize auto weights": dict(method="minibatch", batch_size=8, lr="auto",
                                     standardize=True, momentum=0.5, epochs=4, seed=8,
                                     validation_fraction=0.1),
    "restore best validation": dict(method="sgd", lr=0.08, epochs=6, stop_on="validation",
                                    restore_best=True, seed=11),
    "restore best loss average": dict(method="minibatch", batch_size=4, lr=0.2, epochs=5,
                                      restore_best=True, average=30, seed=12),
}


@pytest.fixture(scope="module")
def problem():
    X, y, _ = gdcore.make_regression(203, 4, noise=0.3, bias=0.5, seed=7)
    weights = np.random.default_rng(0).uniform(0.5, 2.0, 203)
    return X, y, weights


def _options(name, problem, backend):
    X, y, weights = problem
    options = dict(RUNS[name], backend=backend)
    if "weights" in name:
        options["sample_weight"] = weights
    return options


class Stop(KeyboardInterrupt):
    """What the test's callback raises to stop a run where it wants."""


def _interrupt_at(global_step):
    def callback(info):
        if info["global_step"] >= global_step:
            raise Stop
    return callback


@pytest.mark.parametrize("name", RUNS)
def test_interrupted_anywhere_resumes_to_the_same_bits(tmp_path, problem, backend, name):
    X, y, _ = problem
    options = _options(name, problem, backend)
    whole = gdcore.fit(X, y, **options)
    total = whole.n_steps
    every = max(1, total // 40)
    for stop_at in sorted({every, total // 3, total // 2 + 1, total - 1}):
        path = tmp_path / f"run{stop_at}.ckpt"
        # saves after every slice of `every` steps; stops the run (as Ctrl-C
        # would) at the first slice at or after step `stop_at`
        with pytest.raises(Stop):
            gdcore.fit(X, y, checkpoint=path, checkpoint_seconds=1e-9,
                       callback=_interrupt_at(stop_at), callback_every=every, **options)
        # (stopped at its first slice, the run saved nothing: it starts afresh)
        assert path.exists() == (stop_at > every)
        resumed = gdcore.fit(X, y, checkpoint=path, **options)
        np.testing.assert_array_equal(resumed.w, whole.w)
        assert resumed.b == whole.b
        for field in ("history", "grad_norm", "lr_history", "val_loss"):
            np.testing.assert_array_equal(getattr(resumed, field), getattr(whole, field))
        assert (resumed.n_steps, resumed.epochs_run, resumed.stop_reason) == \
            (whole.n_steps, whole.epochs_run, whole.stop_reason)
        assert (resumed.best_epoch, resumed.best_loss, resumed.best_val_loss) == \
            (whole.best_epoch, whole.best_loss, whole.best_val_loss)
        # the finished file gives the result again, at once
        again = gdcore.fit(X, y, checkpoint=path, **options)
        np.testing.assert_array_equal(again.w, whole.w)
        assert again.n_steps == whole.n_steps


def test_multi_output_and_warm_start_resume(tmp_path, problem):
    X, y, _ = problem
    Y = np.c_[y, 1 - y]
    first = gdcore.fit(X, Y, method="sgd", epochs=1, lr=0.01, seed=0, momentum=0.5)
    options = dict(method="sgd", epochs=3, lr=0.01, seed=0, momentum=0.5, warm_start=first)
    whole = gdcore.fit(X, Y, **options)
    path = tmp_path / "multi.ckpt"
    with pytest.raises(Stop):
        gdcore.fit(X, Y, checkpoint=path, checkpoint_seconds=1e-9,
                   callback=_interrupt_at(first.n_steps + 250), callback_every=25, **options)
    resumed = gdcore.fit(X, Y, checkpoint=path, **options)
    np.testing.assert_array_equal(resumed.w, whole.w)
    np.testing.assert_array_equal(resumed.b, whole.b)


def test_saves_at_most_every_checkpoint_seconds(tmp_path, problem, monkeypatch):
    X, y, _ = problem
    saves = []
    from gdcore import _checkpoint

    original = _checkpoint.Checkpoint.save
    monkeypatch.setattr(_checkpoint.Checkpoint, "save",
                        lambda self, saved: (saves.append(time.monotonic()),
                                             original(self, saved)))
    gdcore.fit(X, y, method="sgd", epochs=20, lr=0.001, checkpoint=tmp_path / "c.ckpt",
               checkpoint_seconds=3600)
    assert len(saves) == 1                  # only the final save
    saves.clear()
    gdcore.fit(X, y, method="sgd", epochs=3, lr=0.001, checkpoint=tmp_path / "d.ckpt",
               checkpoint_seconds=1e-9)
    assert len(saves) == 3 * 16 + 1         # every slice of every epoch, and the end


def test_other_options_or_data_are_refused_and_the_file_kept(tmp_path, problem):
    X, y, _ = problem
    path = tmp_path / "run.ckpt"
    gdcore.fit(X, y, method="sgd", epochs=2, lr=0.01, seed=0, checkpoint=path)
    content = path.read_bytes()
    for options, data in [(dict(lr=0.02), (X, y)), (dict(momentum=0.5), (X, y)),
                          (dict(method="batch"), (X, y)), (dict(seed=1), (X, y)),
                          (dict(w0=np.ones(4)), (X, y)),
                          (dict(sample_weight=np.ones(203)), (X, y)),
                          ({}, (X + 1e-3, y)), ({}, (X[:-1], y[:-1])), ({}, (X, -y))]:
        merged = {**dict(method="sgd", epochs=2, lr=0.01, seed=0), **options}
        with pytest.raises(ValueError, match=r"^checkpoint .* other options or other data"):
            gdcore.fit(*data, checkpoint=path, **merged)
        assert path.read_bytes() == content
    # the options that do not change the numbers may differ
    resumed = gdcore.fit(X, y, method="sgd", epochs=2, lr=0.01, seed=0, checkpoint=path,
                         verbose=0, n_threads=1, check_lr=True, callback=lambda info: None)
    assert resumed.epochs_run == 2


@pytest.mark.parametrize("content", [b"", b"not a zip file", b"PK\x03\x04 broken"])
def test_damaged_file_is_refused_naming_checkpoint(tmp_path, problem, content):
    X, y, _ = problem
    path = tmp_path / "run.ckpt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"^checkpoint .*(damaged|not a gdcore)"):
        gdcore.fit(X, y, epochs=1, checkpoint=path)
    assert path.read_bytes() == content


def test_another_npz_is_refused(tmp_path, problem):
    X, y, _ = problem
    path = tmp_path / "run.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(ValueError, match=r"^checkpoint .*(damaged|not a gdcore)"):
        gdcore.fit(X, y, epochs=1, checkpoint=path)


def test_more_epochs_continue_a_finished_checkpoint(tmp_path, problem):
    """epochs is the run's total: a larger one continues the saved run."""
    X, y, _ = problem
    path = tmp_path / "run.ckpt"
    gdcore.fit(X, y, method="sgd", epochs=2, lr=0.01, seed=0, checkpoint=path)
    longer = gdcore.fit(X, y, method="sgd", epochs=4, lr=0.01, seed=0, checkpoint=path)
    whole = gdcore.fit(X, y, method="sgd", epochs=4, lr=0.01, seed=0)
    np.testing.assert_array_equal(longer.w, whole.w)
    np.testing.assert_array_equal(longer.history, whole.history)


def test_bad_checkpoint_options(problem):
    X, y, _ = problem
    with pytest.raises(TypeError, match="checkpoint"):
        gdcore.fit(X, y, checkpoint=3)
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="checkpoint_seconds"):
            gdcore.fit(X, y, checkpoint="x.ckpt", checkpoint_seconds=bad)


# ---------------------------------------------------------------------------
# kill -9 at random moments, then the same command again
# ---------------------------------------------------------------------------

TRAIN = ["-n", "20000", "-d", "8", "--data-seed", "3", "--lr", "0.01"]
#: Runs of 1-2.5 s with the checkpoint (saved every 0.02 s); start-up is 0.3 s.
KILL_RUNS = {
    "sgd momentum split": ["--method", "sgd", "--lr", "0.001", "--momentum", "0.9",
                           "--validation-fraction", "0.1", "--seed", "5", "--epochs", "2500",
                           "--stop-on", "validation", "--restore-best"],
    "minibatch schedule": ["--method", "minibatch", "--batch-size", "16", "--epochs", "1800",
                           "--schedule", "step:step_size=3,gamma=0.5", "--seed", "6"],
    "batch nesterov": ["-n", "100000", "--method", "batch", "--lr", "0.3", "--momentum",
                       "0.5", "--nesterov", "--epochs", "1500"],
}


def _train(tmp_path, *args):
    return subprocess.Popen([sys.executable, "-m", "gdcore", "train", *TRAIN, *args],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.parametrize("name", KILL_RUNS)
def test_kill_9_then_the_same_command_finishes_with_the_same_model(tmp_path, name):
    args = KILL_RUNS[name]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "gdcore", "train", *TRAIN, *args, "-o",
                           "whole.json"], cwd=tmp_path, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    seconds = time.perf_counter() - started     # kill at 35-80 % of a run on this machine
    whole = json.loads((tmp_path / "whole.json").read_text())
    rng = np.random.default_rng(sum(map(ord, name)))
    command = [*args, "--checkpoint", "run.ckpt", "--checkpoint-seconds", "0.02",
               "-o", "model.json"]
    kills = 0
    for _ in range(3):
        process = _train(tmp_path, *command)
        time.sleep(rng.uniform(0.35, 0.8) * seconds)
        if process.poll() is not None:          # it finished before the kill
            assert process.returncode == 0, process.stderr.read()
            break
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        kills += 1
        if (tmp_path / "model.json").exists():  # killed after its final write: whole
            assert json.loads((tmp_path / "model.json").read_text())["w"] == whole["w"]
            break
    finished = _train(tmp_path, *command)
    assert finished.wait(timeout=300) == 0, finished.stderr.read()
    assert kills >= 1
    model = json.loads((tmp_path / "model.json").read_text())
    for key in ("w", "b", "history", "grad_norm", "lr_history", "val_loss", "n_steps",
                "epochs_run", "stop_reason", "best_epoch", "best_loss", "best_val_loss"):
        assert model[key] == whole[key], key
    # no temporary file of the checkpoint's atomic writes is left behind
    leftovers = [p.name for p in tmp_path.iterdir()
                 if p.name not in ("whole.json", "model.json", "run.ckpt")]
    assert all(p.startswith(".run.ckpt.") for p in leftovers)
