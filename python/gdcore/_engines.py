"""The seam between gdcore's Python layer and its arithmetic: the backends.

A backend does the arithmetic of every public function: the raw sums of a
pass over the data (``value_and_grad``, the power iteration of
``max_stable_lr``), predictions, the loss at many candidate parameters
(``loss_grid``), and -- bound to one run's data and rule by
:meth:`Backend.trainer` -- the steps of an epoch and the loss over held-out
rows. Everything around the arithmetic (checks, the training loop, results)
is the same code for every backend.

Two backends: ``cython``, the compiled kernels (``gdcore/kernels.pxi``,
``gdcore/landscape.pxi``, picked for the CPU by ``_dispatch``), and
``reference``, the plain-Python specification (:mod:`gdcore.reference`).
Both see parameters and buffers in the by-output layout of
:mod:`gdcore._state`, and the same sample order.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from . import _dispatch, _orders, reference
from ._options import Config
from ._state import Data, TrainState
from ._validation import raise_if_nonfinite_input


class Trainer(Protocol):
    """A backend bound to one run: its data and its rule, prepared once."""

    #: Updates in a complete epoch.
    steps_per_epoch: int

    def epoch_order(self, state: TrainState) -> np.ndarray | None:
        """The visiting order of the next epoch (drawn from ``state.rng`` when
        shuffling), in the form ``run`` takes it."""
        ...

    def raise_if_bad_input(self) -> None:
        """``ValueError`` naming the first non-finite value of ``X`` or ``y``
        (called only once a loss was not finite)."""
        ...

    def run(self, state: TrainState, order: np.ndarray | None, lr: float, first_step: int,
            stop_step: int, running: float) -> tuple[int, float, float, bool]:
        """Run steps ``first_step .. stop_step - 1`` of an epoch, updating
        ``state.buffers`` and ``state.l1_total`` in place (not its counters:
        the caller moves those).

        ``order`` holds the rows of the epoch in visiting order (None: every
        row in order), ``lr`` is the epoch's rate and ``state.global_step``
        the global index of step ``first_step``; ``running`` is the epoch's
        loss accumulator so far (0.0 at its start), in the backend's own terms.
        Returns ``(steps, running, part, nonfinite)``: updates applied; the
        accumulator continued, so that an epoch run in slices adds its losses
        exactly as one call would; the sum of this call's batch losses (each
        before its update); and whether the run stopped at a batch whose loss
        was not finite (that update not applied).
        """
        ...

    def loss_total(self, running: float) -> float:
        """The sum of an epoch's batch losses, from its final accumulator."""
        ...

    def subset_loss(self, rows: np.ndarray, params: np.ndarray) -> float:
        """Loss over the rows ``rows`` of X at ``params`` (in X's units, never
        standardized)."""
        ...


class TrainerFactory(Protocol):
    """What the training loop needs of a backend: trainers, and a name."""

    name: str

    def trainer(self, data: Data, config: Config) -> Trainer:
        """Bind to one run: ``config`` holds the resolved batch size and threads."""
        ...


class Backend(TrainerFactory, Protocol):
    """One way of doing gdcore's arithmetic."""

    def sums(self, X: np.ndarray, Y: np.ndarray | None, params: np.ndarray,
             n_threads: int, *, weights: np.ndarray | None = None,
             standardize: np.ndarray | None = None) -> np.ndarray:
        """``[S, R(k), G(k*d)]``: ``sum s |r|^2``, ``sum s r`` and ``X.T @ (s r)`` by
        output, ``r = X @ W + b - Y`` over all rows (``Y`` None: targets 0, one
        output; ``s`` the weights, 1 without; with ``standardize``, the
        standardized rows in place of X's)."""
        ...

    def predict(self, X: np.ndarray, w: np.ndarray, b: float | np.ndarray) -> np.ndarray:
        """``X @ w + b``."""
        ...

    def loss_grid(self, X: np.ndarray, y: np.ndarray, W: np.ndarray, B: np.ndarray,
                  loss_factor: float, n_threads: int) -> np.ndarray:
        """The loss at each candidate ``(W[k], B[k])`` (one output)."""
        ...


# ---------------------------------------------------------------------------
# Data in memory: what both backends' trainers share
# ---------------------------------------------------------------------------

def vector_norm(x: np.ndarray) -> float:
    """``sqrt(sum x**2)``, summed in the compiled kernels' fixed order when they
    are built (so an epoch's gradient norm has the same bits whether the
    training loop or a multi-epoch kernel call computed it)."""
    if _dispatch.kernels is not None:
        return float(_dispatch.kernels.norm(np.ascontiguousarray(x)))
    with np.errstate(over="ignore"):
        return float(np.linalg.norm(x))


#: sample orders drawn at once for a multi-epoch call: about 1 MiB of them
#: (one when an order is larger: then the run's own index array holds it)
ORDER_BLOCK_BYTES = 1 << 20

#: ... and in blocks of about 256 KiB when drawn ahead on a second thread
#: (at most three blocks exist at once; smaller blocks overlap more)
AHEAD_BLOCK_BYTES = 1 << 18

#: rows of a float32 X made float64 at a time by ``predict``: about 1 MiB
CONVERT_BLOCK_BYTES = 1 << 20


class InMemory:
    """The sample order and input checks of a run on arrays in memory."""

    def __init__(self, data: Data, config: Config) -> None:
        self.steps_per_epoch = -(-data.n_train // config.batch_size)
        self._data = data
        self._block = config.shuffle_block
        shuffled = config.shuffle and config.batch_size < data.n_train
        # one index array for the whole run
        self._buffer = np.empty(data.n_train, dtype=np.intp) if shuffled else None

    def epoch_order(self, state: TrainState) -> np.ndarray | None:
        """Rows of this epoch in visiting order (None: 0..n-1).

        With shuffling, the order is ``rng.permutation`` of the training rows,
        a fresh one every epoch, drawn into one reusable index array
        (``rng.shuffle`` of a fresh copy of the rows is exactly what
        ``rng.permutation`` does), or a block-wise shuffle (``shuffle_block``).
        The full-batch gradient does not depend on the order, so none is drawn
        for it.
        """
        rows, buffer = self._data.train_rows, self._buffer
        if buffer is None:
            return rows
        assert state.rng is not None
        if self._block is None:
            if rows is None:
                _orders.fill_range(buffer)
            else:
                np.copyto(buffer, rows)
            self.shuffle(state.rng, buffer)
            return buffer
        # Block-wise: the blocks of `shuffle_block` consecutive (training) rows
        # are visited in a random order and the rows of each block in a random
        # order, so a memory-mapped X is read one contiguous stretch of the file
        # at a time. Drawn from the same rng: the blocks' order, then each block.
        size = int(self._block)
        n_blocks = -(-buffer.shape[0] // size)
        at = 0
        for b in state.rng.permutation(n_blocks):
            start, stop = b * size, min((b + 1) * size, buffer.shape[0])
            block = (np.arange(start, stop, dtype=np.intp) if rows is None
                     else rows[start:stop].copy())
            state.rng.shuffle(block)
            buffer[at:at + block.shape[0]] = block
            at += block.shape[0]
        return buffer

    def shuffle(self, rng: np.random.Generator, order: np.ndarray) -> None:
        """``rng.shuffle(order)``, in place."""
        rng.shuffle(order)

    def raise_if_bad_input(self) -> None:
        raise_if_nonfinite_input(self._data.X, self._data.y)


# ---------------------------------------------------------------------------
# cython: the compiled kernels
# ---------------------------------------------------------------------------

class CythonTrainer(InMemory):
    """The compiled epoch kernel bound to one run."""

    def __init__(self, data: Data, config: Config) -> None:
        super().__init__(data, config)
        kernels = _dispatch.require()
        # Per-sample epochs on short rows run the build that is fastest there
        # (same bits from every build; see _dispatch.SHORT_ROW_FEATURES).
        if config.batch_size == 1 and data.n_features <= _dispatch.SHORT_ROW_FEATURES:
            kernels = _dispatch.short_row_kernels or kernels
        self._kernels = kernels
        self._threads = config.n_threads or 1
        self._rule = kernels.Rule(config, config.batch_size, self._threads)
        self._X, self._Y, self._weights = data.X, data.Y, data.weights
        self._standardize = data.standardize
        self._loss_factor = config.loss_factor
        #: whole epochs can run in one call (run_epochs): the order of every
        #: row, not of held-out rows' complement or of blocks
        self.runs_epochs = data.train_rows is None and self._block is None

    def shuffle(self, rng: np.random.Generator, order: np.ndarray) -> None:
        """``rng.shuffle(order)`` in place, by the compiled shuffle
        (:func:`gdcore._orders.shuffle`: the same order and generator state)."""
        _orders.shuffle(rng, order.reshape(1, -1), self._threads)

    def run(self, state: TrainState, order: np.ndarray | None, lr: float, first_step: int,
            stop_step: int, running: float) -> tuple[int, float, float, bool]:
        steps, running, part, nonfinite, state.l1_total = self._kernels.run_epoch(
            self._X, self._Y, order, self._weights, state.buffers, self._rule, lr,
            state.global_step, first_step, stop_step, running, state.l1_total,
            self._standardize)
        return steps, running, part, nonfinite

    def loss_total(self, running: float) -> float:
        return self._loss_factor * running      # the kernel sums losses over the factor

    def run_epochs(self, state: TrainState, epochs: int, lr: float,
                   stopping: tuple[int, float, int]
                   ) -> tuple[int, bool, np.ndarray, np.ndarray, bool]:
        """Up to ``epochs`` whole epochs at rate ``lr`` in compiled calls
        (``kernels.run_epochs``), their sample orders drawn a block at a time.

        ``stopping`` is ``(stop_on, tol, n_iter_no_change)`` with ``stop_on``
        0 (none), 1 (the loss) or 2 (the gradient norm). Updates the state
        (buffers, counters, early stopping's best score; the generator as if
        the epochs run had drawn their orders one by one) and returns
        ``(epochs_run, failed, losses, grad_norms, converged)``: ``failed``
        means that the epoch after those run stopped at a non-finite loss or
        parameters (it is left undone, for the training loop to run and
        handle); fewer epochs than asked may also run because the orders of
        more did not fit in one block.

        With two threads or more and more than one block of orders, the next
        block is drawn on a second thread while the current one trains
        (:class:`gdcore._orders.Ahead`): the same orders, the same bits.
        Interrupted (Ctrl-C stops a compiled call with the state as the call
        found it), the generator is left at the state after the epochs whose
        parameters the state holds.
        """
        n = self._data.n_train
        if self._buffer is None:
            return self._run_block(state, None, epochs, lr, stopping)
        assert state.rng is not None
        per_block = max(1, AHEAD_BLOCK_BYTES // (8 * n))
        if epochs <= per_block or per_block == 1 or self._threads < 2:
            epochs = min(epochs, max(1, ORDER_BLOCK_BYTES // (8 * n)))
            start = state.rng.bit_generator.state
            orders = _orders.draw(state.rng, epochs, n,
                                  self._buffer.reshape(1, n) if epochs == 1 else None,
                                  self._threads)
            try:
                outcome = self._run_block(state, orders, epochs, lr, stopping)
            except BaseException:       # Ctrl-C: the state is as the call found it
                _orders.rewind(state.rng, start, 0, n)
                raise
            if outcome[0] < epochs:                 # undraw the orders not used
                _orders.rewind(state.rng, start, outcome[0], n)
            return outcome
        try:
            ahead = _orders.Ahead(state.rng, n, epochs, per_block)
        except RuntimeError:            # no thread to be had: draw here instead
            return self.run_epochs(state, min(epochs, per_block), lr, stopping)
        # The run's generator is set, whatever happens, to the state after the
        # epochs whose parameters the state holds: `at`, plus `redraw` epochs.
        at, redraw = ahead.start, 0
        done, losses, grad_norms = 0, [], []
        failed = converged = False
        try:
            for size in _orders.block_sizes(epochs, per_block):
                start, orders, after = ahead.next()
                at = start          # until this block's call returns
                ran, failed, block_losses, block_norms, converged = self._run_block(
                    state, orders, size, lr, stopping)
                done += ran
                losses.append(block_losses)
                grad_norms.append(block_norms)
                if ran < size:      # stopped or failed within the block
                    redraw = ran
                    break
                at = after
                if converged:
                    break
        finally:
            ahead.close()
            _orders.rewind(state.rng, at, redraw, n)
        return done, failed, np.concatenate(losses), np.concatenate(grad_norms), converged

    def _run_block(self, state: TrainState, orders: np.ndarray | None, epochs: int,
                   lr: float, stopping: tuple[int, float, int]
                   ) -> tuple[int, bool, np.ndarray, np.ndarray, bool]:
        """:meth:`run_epochs` of one compiled call, the orders given."""
        losses, grad_norms = np.empty(epochs), np.empty(epochs)
        stop_on, tol, patience = stopping
        (done, steps, state.l1_total, state.best_score, state.no_improvement,
         converged) = self._kernels.run_epochs(
            self._X, self._Y, orders, self._weights, state.buffers, self._rule, lr,
            state.global_step, epochs, state.l1_total, losses, grad_norms, stop_on, tol,
            patience, state.best_score, state.no_improvement, self._standardize)
        state.global_step += steps
        failed = done < epochs and not converged
        return done, failed, losses[:done], grad_norms[:done], converged

    def subset_loss(self, rows: np.ndarray, params: np.ndarray) -> float:
        return self._kernels.subset_loss(self._X, self._Y, rows, params, self._loss_factor)


class CythonBackend:
    """The compiled kernels."""

    name = "cython"

    def trainer(self, data: Data, config: Config) -> Trainer:
        return CythonTrainer(data, config)

    def sums(self, X: np.ndarray, Y: np.ndarray | None, params: np.ndarray,
             n_threads: int, *, weights: np.ndarray | None = None,
             standardize: np.ndarray | None = None) -> np.ndarray:
        k = 1 if Y is None else Y.shape[1]
        out = np.empty(1 + k + k * X.shape[1])
        _dispatch.require().full_sums(X, Y, weights, params, out, n_threads, standardize)
        return out

    def predict(self, X: np.ndarray, w: np.ndarray, b: float | np.ndarray) -> np.ndarray:
        # A matrix product is what BLAS does best: NumPy's, no kernel of ours.
        # A float32 X goes in blocks of rows made float64 (NumPy would make
        # a float64 copy of all of it; each row's product is the same).
        with np.errstate(invalid="ignore", over="ignore"):
            if X.dtype == np.float64:
                predictions = X @ w
            else:
                predictions = np.empty((X.shape[0], *w.shape[1:]))
                step = max(1, CONVERT_BLOCK_BYTES // (8 * X.shape[1]))
                for start in range(0, X.shape[0], step):
                    block = X[start:start + step].astype(np.float64)
                    predictions[start:start + step] = block @ w
            predictions += b
        return predictions

    def loss_grid(self, X: np.ndarray, y: np.ndarray, W: np.ndarray, B: np.ndarray,
                  loss_factor: float, n_threads: int) -> np.ndarray:
        _dispatch.require()
        out = np.empty(W.shape[0])
        assert _dispatch.landscape is not None
        _dispatch.landscape.loss_grid(X, y, W, B, loss_factor, out, n_threads)
        return out


# ---------------------------------------------------------------------------
# reference: the plain-Python specification
# ---------------------------------------------------------------------------

class ReferenceTrainer(InMemory):
    """:func:`gdcore.reference.train_epoch` bound to one run (the data as lists)."""

    def __init__(self, data: Data, config: Config) -> None:
        super().__init__(data, config)
        self._rows = data.X.tolist()              # the held-out loss's rows
        self._training_rows = (self._rows if data.standardize is None else
                               reference.standardized(self._rows, data.standardize.tolist()))
        self._targets = data.Y.tolist()
        self._weights = None if data.weights is None else data.weights.tolist()
        self._config = config

    def run(self, state: TrainState, order: np.ndarray | None, lr: float, first_step: int,
            stop_step: int, running: float) -> tuple[int, float, float, bool]:
        visit = list(range(len(self._rows))) if order is None else order.tolist()
        lists = state.buffers.tolist()
        totals = [state.l1_total]
        outcome = reference.train_epoch(self._training_rows, self._targets, visit,
                                        self._weights,
                                        lists, totals, self._config,
                                        self._config.batch_size, lr, state.global_step,
                                        first_step, stop_step, running)
        state.buffers[...] = lists
        state.l1_total = totals[0]
        return outcome

    def loss_total(self, running: float) -> float:
        return running

    def subset_loss(self, rows: np.ndarray, params: np.ndarray) -> float:
        loss, _ = reference.batch_loss_and_gradient(
            [self._rows[i] for i in rows], [self._targets[i] for i in rows],
            params.tolist(), self._config.loss_factor)
        return loss


class ReferenceBackend:
    """The plain-Python specification (slow: small data only)."""

    name = "reference"

    def trainer(self, data: Data, config: Config) -> Trainer:
        return ReferenceTrainer(data, config)

    def sums(self, X: np.ndarray, Y: np.ndarray | None, params: np.ndarray,
             n_threads: int, *, weights: np.ndarray | None = None,
             standardize: np.ndarray | None = None) -> np.ndarray:
        k = 1 if Y is None else Y.shape[1]
        W, b = reference.split(params.tolist(), k)
        rows = X.tolist()
        if standardize is not None:
            rows = reference.standardized(rows, standardize.tolist())
        sum_of_squares, sum_r_x, sum_r = reference.sums(
            rows, None if Y is None else Y.tolist(), W, b,
            None if weights is None else weights.tolist())
        return np.array([sum_of_squares, *sum_r, *(v for row in sum_r_x for v in row)])

    def predict(self, X: np.ndarray, w: np.ndarray, b: float | np.ndarray) -> np.ndarray:
        W = w.reshape(w.shape[0], -1).T.tolist()
        predictions = np.array(reference.predict(X.tolist(), W, np.ravel(b).tolist()))
        return predictions.reshape(X.shape[0], *w.shape[1:])

    def loss_grid(self, X: np.ndarray, y: np.ndarray, W: np.ndarray, B: np.ndarray,
                  loss_factor: float, n_threads: int) -> np.ndarray:
        return np.array(reference.loss_values(X.tolist(), y.tolist(), W.tolist(),
                                              B.tolist(), loss_factor), dtype=np.float64)


#: backend name -> backend
BACKENDS: dict[str, Backend] = {"cython": CythonBackend(), "reference": ReferenceBackend()}
