"""Feedback while training: a tqdm progress bar and per-epoch lines."""

from __future__ import annotations

import math
import sys
from typing import Any


class Progress:
    """Per-epoch feedback: a tqdm bar (``progress=True``) and/or printed lines
    (``verbose >= 1``)."""

    def __init__(self, *, epochs: int, n_train: int, verbose: int, progress: bool) -> None:
        self.verbose = verbose
        self.n_train = n_train
        self.bar: Any = None
        if progress:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                raise ImportError("progress=True needs tqdm: pip install tqdm "
                                  "(or pip install 'gdcore[progress]')") from None
            self.bar = tqdm(total=epochs, unit="epoch", desc="gdcore")

    def epoch_done(self, epoch: int, loss: float, grad_norm: float, lr: float,
                   seconds: float) -> None:
        """Report the end of epoch ``epoch`` (0-based)."""
        rate = self.n_train / seconds if seconds > 0 else math.inf
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.6g}", samples_per_s=f"{rate:.3g}")
            self.bar.update(1)
        if self.verbose:
            print(f"epoch {epoch}: loss {loss:.10g}, |grad| {grad_norm:.4g}, lr {lr:.4g}, "
                  f"{rate:.3g} samples/s", file=sys.stdout)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
