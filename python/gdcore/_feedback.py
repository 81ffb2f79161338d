"""Feedback while training: a tqdm progress bar and per-epoch lines.

The bar counts training samples (every epoch's, so its total is ``epochs *
n_train``); the training loop reports the samples of each slice of an epoch
it runs (:meth:`Progress.advance`), and the bar redraws at most every
:data:`REFRESH_SECONDS`, with the running mean of the batch losses in its
postfix, so it moves within long epochs. Per-epoch lines (``verbose``) go
through ``tqdm.write`` while a bar is shown, so the two do not garble the
terminal.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

#: The bar redraws at most this often (seconds).
REFRESH_SECONDS = 0.25


class Progress:
    """Feedback of one run: a tqdm bar (``progress=True``) and/or printed lines
    (``verbose >= 1``).

    ``epochs_done`` and ``samples_done`` place the bar of a run resumed from a
    checkpoint where the run stands.
    """

    def __init__(self, *, epochs: int, n_train: int, verbose: int, progress: bool,
                 epochs_done: int = 0, samples_done: int = 0) -> None:
        self.verbose = verbose
        self.n_train = n_train
        self.epochs = epochs
        self.shown = progress               # a bar is (or will be) shown
        self.bar: Any = None                # made when training starts (its clock)
        self._pending = 0                   # samples run, not yet shown
        self._losses = 0.0                  # batch losses since the last redraw
        self._steps = 0
        self._shown_at = time.monotonic()
        self._start = (epochs_done, samples_done)
        self._tqdm: Any = None
        if progress:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                raise ImportError("progress=True needs tqdm: pip install tqdm "
                                  "(or pip install 'gdcore[progress]')") from None
            self._tqdm = tqdm

    def _make_bar(self) -> None:
        """The bar, made when the first slice of training has run, so that its
        clock (and the rate it shows) starts with training, not before the
        data were prepared."""
        epochs_done, samples_done = self._start
        self.bar = self._tqdm(total=self.epochs * self.n_train,
                              initial=epochs_done * self.n_train + samples_done,
                              unit="sample", unit_scale=True,
                              desc=self._description(epochs_done), dynamic_ncols=True)
        self._shown_at = time.monotonic()

    def _description(self, epoch: int) -> str:
        return f"gdcore epoch {min(epoch + 1, self.epochs)}/{self.epochs}"

    def advance(self, samples: int, loss_sum: float, steps: int) -> None:
        """``samples`` more training samples were run in ``steps`` steps whose
        batch losses add up to ``loss_sum``; redraw if it is time."""
        if not self.shown:
            return
        if self.bar is None:
            self._make_bar()
        self._pending += samples
        self._losses += loss_sum
        self._steps += steps
        if time.monotonic() - self._shown_at >= REFRESH_SECONDS:
            self._show(self._losses / self._steps if self._steps else math.nan)

    def _show(self, loss: float) -> None:
        self.bar.set_postfix(loss=f"{loss:.6g}", refresh=False)
        self.bar.update(self._pending)
        self._pending, self._losses, self._steps = 0, 0.0, 0
        self._shown_at = time.monotonic()

    def epoch_done(self, epoch: int, loss: float, grad_norm: float, lr: float,
                   seconds: float) -> None:
        """Report the end of epoch ``epoch`` (0-based)."""
        rate = self.n_train / seconds if seconds > 0 else math.inf
        if self.shown:
            if self.bar is None:
                self._make_bar()
            self.bar.set_description(self._description(epoch + 1), refresh=False)
            self._show(loss)
        if self.verbose:
            line = (f"epoch {epoch}: loss {loss:.10g}, |grad| {grad_norm:.4g}, lr {lr:.4g}, "
                    f"{rate:.3g} samples/s")
            if self.bar is not None:
                self.bar.write(line, file=sys.stdout)
            else:
                print(line, file=sys.stdout)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
