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
# thread does which candidates (OpenMP ``prange`` over the blocks).
#
# Where inputs are checked: nowhere here. ``python/gdcore/landscape.py`` checks
# shapes, dtypes, contiguity and finiteness of the candidates once, before the
# kernel runs; a non-finite X or y makes a loss non-finite and the Python layer
# then names the culprit.

from cython.parallel cimport prange, threadid
from libc.stdlib cimport free, malloc

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int gl_max_threads(void) { return omp_get_max_threads(); }
    static const int gl_have_openmp = 1;
    #else
    static int gl_max_threads(void) { return 1; }
    static const int gl_have_openmp = 0;
    #endif
    """
    int gl_max_threads() noexcept nogil
    const int gl_have_openmp

cdef enum:
    # Doubles of per-block state (transposed weights, biases, residuals and
    # sums: (d + 3) * m) kept within about half of a 32 KiB L1 data cache.
    L1_DOUBLES = 2048
    MIN_BLOCK = 16
    MAX_BLOCK = 512
    # Blocks are a multiple of this many candidates (one AVX-512 register's
    # worth of doubles), so the vector loops have no scalar remainder.
    BLOCK_ALIGN = 8

OPENMP = bool(gl_have_openmp)


def max_threads():
    """Number of threads ``loss_grid`` uses by default."""
    return gl_max_threads()


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
                            double *sums) noexcept nogil:
    # One feature: OUT sums[k] = sum_i (x[i] * w[k] + b[k] - y[i])**2, k < m.
    cdef Py_ssize_t i, k
    cdef double xi, yi, r
    for k in range(m):
        sums[k] = 0.0
    for i in range(n):
        xi = x[i]
        yi = y[i]
        for k in range(m):
            r = xi * w[k] + b[k] - yi
            sums[k] += r * r


cdef void _sums_many_features(const double *X, const double *y, Py_ssize_t n,
                              Py_ssize_t d, const double *wt, const double *b,
                              Py_ssize_t m, double *r, double *sums) noexcept nogil:
    # d features. IN: wt (d, m), the block's weights transposed (wt[j*m + k] is
    # feature j of candidate k); b (m,). Scratch: r (m,).
    # OUT: sums[k] = sum_i (X[i] . w_k + b[k] - y[i])**2, k < m.
    cdef Py_ssize_t i, j, k
    cdef double xj, yi
    cdef const double *x
    cdef const double *col
    for k in range(m):
        sums[k] = 0.0
    for i in range(n):
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
                        double *scratch, double *out) noexcept nogil:
    # IN: candidates start..stop-1 of W (K, d) and B (K,); scratch of
    # (d + 3) * m doubles. OUT: out[start:stop], the losses.
    cdef double *wt = scratch
    cdef double *b = wt + d * m
    cdef double *r = b + m
    cdef double *sums = r + m
    cdef Py_ssize_t k
    _load_block(W, B, start, stop, d, m, wt, b)
    if d == 1:
        _sums_one_feature(X, y, n, wt, b, m, sums)
    else:
        _sums_many_features(X, y, n, d, wt, b, m, r, sums)
    for k in range(stop - start):
        out[start + k] = loss_factor * sums[k] / n


cdef double *_alloc(Py_ssize_t count) except NULL:
    cdef double *buf = <double *> malloc(count * sizeof(double))
    if buf == NULL:
        raise MemoryError()
    return buf


def loss_grid(const double[:, ::1] X,    # IN (n, d)
              const double[::1] y,       # IN (n,)
              const double[:, ::1] W,    # IN (K, d) candidate weights
              const double[::1] B,       # IN (K,) candidate intercepts
              double loss_factor,        # 1.0 for mse, 0.5 for half_mse
              double[::1] out,           # OUT (K,), overwritten with the losses
              int n_threads):
    """Loss at each of the K candidates ``(W[k], B[k])``, written to ``out``."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], K = W.shape[0]
    cdef Py_ssize_t m, n_blocks, c, stride
    cdef double *scratch = NULL
    if K == 0:
        return
    if n_threads < 1:
        n_threads = 1
    m = _block_size(K, d, n_threads)
    n_blocks = (K + m - 1) // m
    if n_threads > n_blocks:
        n_threads = <int> n_blocks
    # One scratch area per thread, each padded by a cache line.
    stride = (d + 3) * m + 8
    scratch = _alloc(stride * n_threads)
    try:
        with nogil:
            if n_threads == 1:
                for c in range(n_blocks):
                    _block_losses(&X[0, 0], &y[0], n, d, &W[0, 0], &B[0], c * m,
                                  K if (c + 1) * m > K else (c + 1) * m, m, loss_factor,
                                  scratch, &out[0])
            else:
                for c in prange(n_blocks, schedule="dynamic", num_threads=n_threads):
                    _block_losses(&X[0, 0], &y[0], n, d, &W[0, 0], &B[0], c * m,
                                  K if (c + 1) * m > K else (c + 1) * m, m, loss_factor,
                                  scratch + threadid() * stride, &out[0])
    finally:
        free(scratch)
