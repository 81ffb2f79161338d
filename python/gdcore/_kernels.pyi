"""Types of gdcore's compiled kernels (gdcore/kernels.pxi), the same for every
instruction-set build (``_kernels``, ``_kernels_avx2``, ``_kernels_avx512``)."""

from typing import Any

import numpy as np

OPENMP: bool
STATE_ROWS: tuple[str, ...]

def cpu_level() -> int: ...
def max_threads() -> int: ...

class Rule:
    """The update rule of one run, from a validated ``_options.Config``."""

    def __init__(self, config: Any, batch_size: int, n_threads: int) -> None: ...
    @property
    def batch_size(self) -> int: ...

def run_epoch(X: np.ndarray, Y: np.ndarray, order: np.ndarray | None,
              weight: np.ndarray | None, state: np.ndarray, rule: Rule, lr: float,
              global_step: int, first_step: int, stop_step: int, running: float,
              l1_total: float,
              standardize: np.ndarray | None = None) -> tuple[int, float, float, bool, float]: ...
def run_epochs(X: np.ndarray, Y: np.ndarray, orders: np.ndarray | None,
               weight: np.ndarray | None, state: np.ndarray, rule: Rule, lr: float,
               global_step: int, epochs: int, l1_total: float, losses: np.ndarray,
               grad_norms: np.ndarray, stop_on: int, tol: float, n_iter_no_change: int,
               best: float, no_improvement: int, standardize: np.ndarray | None = None
               ) -> tuple[int, int, float, float, int, bool]: ...
def norm(x: np.ndarray) -> float: ...
def sums_step(state: np.ndarray, rule: Rule, sums: np.ndarray, n: int, n_outputs: int,
              lr: float, global_step: int, running: float,
              l1_total: float) -> tuple[int, float, float, bool, float]: ...
def full_sums(X: np.ndarray, Y: np.ndarray | None, weight: np.ndarray | None,
              params: np.ndarray, out: np.ndarray, n_threads: int,
              standardize: np.ndarray | None = None) -> None: ...
def subset_loss(X: np.ndarray, Y: np.ndarray, rows: np.ndarray, params: np.ndarray,
                loss_factor: float) -> float: ...
def fill_range(out: np.ndarray) -> None: ...
