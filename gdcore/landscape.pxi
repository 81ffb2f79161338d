# Compiled kernel of gdcore.loss_grid: the loss of the linear model at many
# candidate parameter vectors at once.
#
# Design
# ------
# Given ``X`` (n, d), ``y`` (n,) and K candidates ``(W[k], B[k])``, compute
# ``loss[k] = a * sum_i (x_i . W[k] + B[k] - y_i)**2 / n`` for every k (``a`` is
# the loss factor: 1 for ``mse``, 0.5 for ``half_mse``). This is what draws a
# loss landscape: a 200 x 200 grid of (w, b) is K = 40,000 candidates.
#
# Evaluating the candidates one by one would read ``X`` K times. Here the
# candidates are cut into blocks of ``m`` (a few hundred for small d) and ``X``
# is streamed once per block: each row is loaded once and, while it sits in a
# register or L1, its residual against all ``m`` candidates of the block is
# formed and squared into ``m`` running sums. The innermost loops run over the
# candidates of the block, contiguous in memory (the block's weights are stored
# transposed, feature by feature), so they vectorise; each candidate's sum still
# runs over the rows in order 0..n-1.
#
# Every candidate's arithmetic is the one of the reference path
# (``gdcore.reference.loss_grid``): the dot product added up from left to right,
# then ``+ b``, then ``- y``, the squares summed in row order, times ``a``,
# divided by n. The build disables floating-point contraction (no FMA), so the
# two paths give the same bits, and the result does not depend on the block
# size or the number of threads: blocks are independent and only change which
# thread does which candidates (common.pxi's _run_blocks).
#
# The GIL is released for the whole call; a call from the main thread looks at
# signals every few MB of arithmetic and stops (raising) when a handler raises.
#
# Where inputs are checked: nowhere here. ``python/gdcore/_validation.py``
# checks shapes, dtypes, contiguity and finiteness of the candidates once,
# before the kernel runs; a non-finite X or y makes a loss non-finite and the
# Python layer then names the culprit.

include "common.pxi"


cdef enum:
    # Doubles of per-block state (transposed weights, biases, residuals and
    # sums: (d + 3) * m) kept within about half of a 32 KiB L1 data cache.
    L1_DOUBLES = 2048
    MIN_BLOCK = 16
    MAX_BLOCK = 512
    # Blocks are a multiple of this many candidates (one AVX-512 register's
    # worth of doubles), so the vector loops have no scalar remainder.
    BLOCK_ALIGN = 8

cdef inline Py_ssize_t _block_size(Py_ssize_t n_candidates, Py_ssize_t d,
                                   int n_threads) noexcept nogil:
    # As many candidates as fit the L1 budget, but small enough that every
    # thread gets a block, rounded up to BLOCK_ALIGN.
    cdef Py_ssize_t m = L1_DOUBLES // (d + 3)
    cdef Py_ssize_t share = (n_candidates + n_threads - 1) // n_threads
    if m > MAX_BLOCK:
        m = MAX_BLOCK
    if m > share:
        m = share
    if m < MIN_BLOCK:
        m = MIN_BLOCK
    return (m + BLOCK_ALIGN - 1) // BLOCK_ALIGN * BLOCK_ALIGN


cdef void _sums_one_feature(const double *x, const double *y, Py_ssize_t n,
                            const double *w, const double *b, Py_ssize_t m,
                            gd_watch *watch, int thread, double *sums) noexcept nogil:
    # One feature: OUT sums[k] = sum_i (x[i] * w[k] + b[k] - y[i])**2, k < m
    # (garbage when the call is interrupted: watch.stop).
    cdef Py_ssize_t i, k
    cdef Py_ssize_t check = _check_every(m), countdown = check
    cdef double xi, yi, r
    for k in range(m):
        sums[k] = 0.0
    for i in range(n):
        countdown -= 1
        if GD_UNLIKELY(countdown == 0):
            countdown = check
            if _interrupted(watch, thread):
                return
        xi = x[i]
        yi = y[i]
        for k in range(m):
            r = xi * w[k] + b[k] - yi
            sums[k] += r * r


cdef void _sums_many_features(const double *X, const double *y, Py_ssize_t n,
                              Py_ssize_t d, const double *wt, const double *b,
                              Py_ssize_t m, gd_watch *watch, int thread, double *r,
                              double *sums) noexcept nogil:
    # d features. IN: wt (d, m), the block's weights transposed (wt[j*m + k] is
    # feature j of candidate k); b (m,). Scratch: r (m,).
    # OUT: sums[k] = sum_i (X[i] . w_k + b[k] - y[i])**2, k < m (garbage when
    # the call is interrupted: watch.stop).
    cdef Py_ssize_t i, j, k
    cdef Py_ssize_t check = _check_every(m * d), countdown = check
    cdef double xj, yi
    cdef const double *x
    cdef const double *col
    for k in range(m):
        sums[k] = 0.0
    for i in range(n):
        countdown -= 1
        if GD_UNLIKELY(countdown == 0):
            countdown = check
            if _interrupted(watch, thread):
                return
        x = X + i * d
        yi = y[i]
        xj = x[0]
        for k in range(m):
            r[k] = xj * wt[k]
        for j in range(1, d):
            xj = x[j]
            col = wt + j * m
            for k in range(m):
                r[k] += xj * col[k]
        for k in range(m):
            xj = r[k] + b[k] - yi
            sums[k] += xj * xj


cdef void _load_block(const double *W, const double *B, Py_ssize_t start,
                      Py_ssize_t stop, Py_ssize_t d, Py_ssize_t m, double *wt,
                      double *b) noexcept nogil:
    # Copy candidates start..stop-1 into the block layout: wt (d, m) transposed,
    # b (m,). Slots past the last candidate repeat it (computed, never stored).
    cdef Py_ssize_t j, k, src
    for k in range(m):
        src = start + k if start + k < stop else stop - 1
        b[k] = B[src]
        for j in range(d):
            wt[j * m + k] = W[src * d + j]


cdef void _block_losses(const double *X, const double *y, Py_ssize_t n, Py_ssize_t d,
                        const double *W, const double *B, Py_ssize_t start,
                        Py_ssize_t stop, Py_ssize_t m, double loss_factor,
                        gd_watch *watch, int thread, double *scratch,
                        double *out) noexcept nogil:
    # IN: candidates start..stop-1 of W (K, d) and B (K,); scratch of
    # (d + 3) * m doubles. OUT: out[start:stop], the losses (unchanged when
    # the call is interrupted).
    cdef double *wt = scratch
    cdef double *b = wt + d * m
    cdef double *r = b + m
    cdef double *sums = r + m
    cdef Py_ssize_t k
    if _interrupted(watch, thread):
        return
    _load_block(W, B, start, stop, d, m, wt, b)
    if d == 1:
        _sums_one_feature(X, y, n, wt, b, m, watch, thread, sums)
    else:
        _sums_many_features(X, y, n, d, wt, b, m, watch, thread, r, sums)
    if watch.stop:
        return
    for k in range(stop - start):
        out[start + k] = loss_factor * sums[k] / n


cdef struct GridTask:
    # The candidate blocks of one loss_grid call (see _grid_block)
    const double *X
    const double *y
    const double *W
    const double *B
    double *out
    double *scratch           # one area of `stride` doubles per thread
    Py_ssize_t n, d, K, m, stride
    double loss_factor
    gd_watch *watch           # Ctrl-C (see common.pxi)


cdef void _grid_block(void *context, Py_ssize_t c, int thread) noexcept nogil:
    # BlockTask: the losses of candidate block c, in thread's scratch
    cdef GridTask *task = <GridTask *> context
    cdef Py_ssize_t stop = (c + 1) * task.m
    _block_losses(task.X, task.y, task.n, task.d, task.W, task.B, c * task.m,
                  task.K if stop > task.K else stop, task.m, task.loss_factor,
                  task.watch, thread, task.scratch + thread * task.stride, task.out)


def loss_grid(const double[:, ::1] X,    # IN (n, d)
              const double[::1] y,       # IN (n,)
              const double[:, ::1] W,    # IN (K, d) candidate weights
              const double[::1] B,       # IN (K,) candidate intercepts
              double loss_factor,        # 1.0 for mse, 0.5 for half_mse
              double[::1] out,           # OUT (K,), overwritten with the losses
              int n_threads):
    """Loss at each of the K candidates ``(W[k], B[k])``, written to ``out``."""
    cdef GridTask task
    cdef gd_watch watch = _watch()
    cdef Py_ssize_t n_blocks
    if W.shape[0] == 0:
        return
    if n_threads < 1:
        n_threads = 1
    task.X = &X[0, 0]
    task.y = &y[0]
    task.W = &W[0, 0]
    task.B = &B[0]
    task.out = &out[0]
    task.n = X.shape[0]
    task.d = X.shape[1]
    task.K = W.shape[0]
    task.loss_factor = loss_factor
    task.watch = &watch
    task.m = _block_size(task.K, task.d, n_threads)
    n_blocks = (task.K + task.m - 1) // task.m
    if n_threads > n_blocks:
        n_threads = <int> n_blocks
    # One scratch area per thread, each padded by a cache line.
    task.stride = (task.d + 3) * task.m + 8
    task.scratch = _alloc(task.stride * n_threads)
    try:
        with nogil:
            _run_blocks(_grid_block, &task, n_blocks, n_threads)
        if watch.stop:
            _raise_pending()        # some losses are missing: none is returned
    finally:
        _free(task.scratch)
