"""The progress bar counts samples within epochs, with the loss in its
postfix; verbose lines go through tqdm.write while a bar is shown; slicing
an epoch for the bar never changes a bit."""

from __future__ import annotations

import numpy as np
import pytest

import gdcore
from gdcore import _feedback, _training

tqdm_auto = pytest.importorskip("tqdm.auto")


class Recorder:
    """Stands in for tqdm: records what the training loop shows."""

    made: list = []

    def __init__(self, total=None, initial=0, **options):
        self.total, self.n, self.initial, self.options = total, initial, initial, options
        self.updates, self.postfixes, self.descriptions, self.written = [], [], [], []
        self.closed = False
        Recorder.made.append(self)

    def update(self, n):
        self.n += n
        self.updates.append(n)

    def set_postfix(self, refresh=True, **values):
        self.postfixes.append(values)

    def set_description(self, text, refresh=True):
        self.descriptions.append(text)

    def write(self, line, file=None):
        self.written.append(line)

    def close(self):
        self.closed = True


@pytest.fixture
def recorder(monkeypatch):
    Recorder.made = []
    monkeypatch.setattr(tqdm_auto, "tqdm", Recorder)
    return Recorder


@pytest.fixture
def fast_refresh(monkeypatch):
    """Redraw at every slice, slices of a few steps: what a slow epoch does."""
    monkeypatch.setattr(_feedback, "REFRESH_SECONDS", 0.0)
    monkeypatch.setattr(_training, "PROGRESS_SECONDS", 1e-6)


@pytest.fixture(scope="module")
def data():
    X, y, _ = gdcore.make_regression(3000, 5, noise=0.1, seed=2)
    return X, y


def test_the_bar_counts_samples_within_one_epoch(data, recorder, fast_refresh):
    """A one-epoch run (an out-of-core run, say) moves the bar many times."""
    X, y = data
    result = gdcore.fit(X, y, method="minibatch", batch_size=7, lr=0.01, epochs=1,
                        progress=True, seed=0)
    bar = recorder.made[0]
    assert bar.total == 3000 and bar.n == 3000 and bar.closed
    assert bar.options["unit"] == "sample"
    moves = [n for n in bar.updates if n]
    assert len(moves) > 10 and all(n > 0 for n in moves)
    assert all(n % 7 == 0 for n in moves[:-1])              # whole batches
    # the postfix: the mean batch loss of each slice, then the epoch's loss
    losses = [float(p["loss"]) for p in bar.postfixes]
    assert len(losses) == len(bar.updates)
    assert losses[-1] == pytest.approx(result.history[0], rel=1e-5)
    assert losses[0] > losses[-2]                           # it learns as it goes
    assert bar.descriptions[-1] == "gdcore epoch 1/1"


def test_epochs_and_early_stop(data, recorder, fast_refresh):
    X, y = data
    result = gdcore.fit(X, y, method="sgd", lr=0.01, epochs=50, tol=1e-3, progress=True,
                        seed=0)
    bar = recorder.made[0]
    assert result.stop_reason == "tol (loss)"
    assert bar.total == 50 * 3000 and bar.n == result.epochs_run * 3000
    assert bar.options["desc"] == "gdcore epoch 1/50"
    assert bar.descriptions[:2] == ["gdcore epoch 2/50", "gdcore epoch 3/50"]


def test_redraws_are_rate_limited(data, recorder, monkeypatch):
    """With the real rate (a redraw at most every REFRESH_SECONDS), a short run
    redraws once per epoch, not once per slice."""
    monkeypatch.setattr(_training, "PROGRESS_SECONDS", 1e-6)
    X, y = data
    gdcore.fit(X, y, method="sgd", lr=0.01, epochs=3, progress=True, seed=0)
    bar = recorder.made[0]
    assert len(bar.updates) <= 3 + 3                 # epochs, and a few mid-epoch
    assert bar.n == 9000


@pytest.mark.parametrize("options", [
    dict(method="sgd", lr=0.01, epochs=3),
    dict(method="minibatch", batch_size=16, lr=0.02, epochs=3, momentum=0.9,
         validation_fraction=0.2),
    dict(method="batch", lr=0.3, epochs=4),
    dict(method="sgd", lr=0.01, epochs=2, average=True, optimizer="adam", restore_best=True),
])
def test_slicing_for_the_bar_changes_no_bit(data, recorder, fast_refresh, backend, options):
    X, y = data
    X, y = (X[:300], y[:300]) if backend == "reference" else (X, y)
    with_bar = gdcore.fit(X, y, progress=True, seed=3, backend=backend, **options)
    without = gdcore.fit(X, y, seed=3, backend=backend, **options)
    np.testing.assert_array_equal(with_bar.w, without.w)
    assert with_bar.b == without.b
    np.testing.assert_array_equal(with_bar.history, without.history)
    np.testing.assert_array_equal(with_bar.grad_norm, without.grad_norm)
    assert with_bar.n_steps == without.n_steps
    assert len([n for n in recorder.made[0].updates if n]) >= options["epochs"]


def test_verbose_lines_go_through_tqdm_write(data, recorder, capsys):
    X, y = data
    gdcore.fit(X, y, method="sgd", lr=0.01, epochs=3, progress=True, verbose=1, seed=0)
    bar = recorder.made[0]
    assert [line.split(":")[0] for line in bar.written] == ["epoch 0", "epoch 1", "epoch 2"]
    assert capsys.readouterr().out == ""              # nothing printed around the bar
    gdcore.fit(X, y, method="sgd", lr=0.01, epochs=2, verbose=1, seed=0)
    assert capsys.readouterr().out.count("\n") == 2  # no bar: plain print


def test_a_halved_epoch_is_not_counted_twice(recorder, fast_refresh):
    X, y, _ = gdcore.make_regression(400, 3, seed=1)
    with pytest.warns(RuntimeWarning, match="retrying the epoch"):
        result = gdcore.fit(X * 30, y, method="sgd", lr=0.01, epochs=2, progress=True,
                            on_divergence="halve", seed=0)
    assert recorder.made[0].n == result.epochs_run * 400


def test_a_resumed_run_starts_the_bar_where_it_stands(tmp_path, data, recorder):
    X, y = data
    path = tmp_path / "run.ckpt"

    def stop(info):
        if info["global_step"] >= 4500:
            raise KeyboardInterrupt

    options = dict(method="sgd", lr=0.01, epochs=3, seed=0, checkpoint=path)
    with pytest.raises(KeyboardInterrupt):
        gdcore.fit(X, y, checkpoint_seconds=1e-9, callback=stop, callback_every=500,
                   **options)
    resumed = gdcore.fit(X, y, progress=True, **options)
    bar = recorder.made[-1]
    # saved at step 4000 (the callback stopped the run before its save at 4500)
    assert bar.initial == 4000 and bar.n == 9000 and resumed.epochs_run == 3


def test_a_real_bar_on_a_terminal_like_stream(data, capsys):
    """tqdm itself, writing to stderr: samples, the epoch and the loss."""
    X, y = data
    gdcore.fit(X, y, method="sgd", lr=0.01, epochs=2, progress=True, seed=0)
    err = capsys.readouterr().err
    assert "gdcore epoch 2/2" in err and "6.00k/6.00k" in err and "loss=" in err
    assert "sample/s" in err
