"""Types of gdcore's compiled loss-landscape kernel (gdcore/landscape.pxi), the
same for every instruction-set build."""

import numpy as np

OPENMP: bool

def max_threads() -> int: ...
def loss_grid(X: np.ndarray, y: np.ndarray, W: np.ndarray, B: np.ndarray,
              loss_factor: float, out: np.ndarray, n_threads: int) -> None: ...
