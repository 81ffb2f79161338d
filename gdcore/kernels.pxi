# Compiled kernels of gdcore: fused least-squares loss/gradient and epoch loops.
#
# Design
# ------
# The model is ``y_hat = X @ w + b``; the loss of a batch of ``m`` rows is
# ``a * sum(r**2) / m`` with ``r = X @ w + b - y`` and ``a`` the *loss factor*
# (1 for ``mse``, 0.5 for ``half_mse``), so ``dL/dw = (2a/m) * X.T @ r`` and
# ``dL/db = (2a/m) * sum(r)``.
#
# Every kernel walks the rows of a C-contiguous float64 ``X`` once: for each row
# it forms the residual (a dot product with ``w``) and, while the row is still in
# L1 cache, adds ``r * x`` to the gradient. No array of size ``n`` is ever
# allocated; the only scratch is O(d) (a gradient buffer, or one partial sum per
# fixed block of rows for the parallel full-data pass).
#
# Three loops share that per-row step and are chosen by the batch size ``B``:
#
# * ``B >= n``  full batch: one step per epoch. The gradient over all rows is
#   split into a fixed number of row blocks that depends on ``n`` only; the
#   blocks are summed in parallel (OpenMP, when built with it) and reduced in
#   block order, so the result is bit-for-bit the same for any thread count.
# * ``B == 1``  per-sample SGD: ``w -= lr * ((2a * r) * x)`` after every row.
# * otherwise  mini-batches of ``B`` rows; the last one may be smaller and uses
#   its own size ``m`` in the average.
#
# A whole epoch runs inside one ``nogil`` block. Rows are visited in the order
# given by an index array (``order``), or 0..n-1 when it is None, so shuffling
# never copies ``X``; with an index array the rows a few steps ahead are
# prefetched.
#
# Where inputs are checked: nowhere here. The Python layer
# (``python/gdcore/_validation.py``) checks shapes, dtypes, contiguity and
# hyper-parameters once, before any kernel runs. Non-finite input values are not
# searched for up front: they make a batch loss non-finite, the loop stops at
# that batch without applying its update and reports it, and only then does the
# Python layer look for the culprit (bad input -> ValueError, otherwise
# divergence -> DivergenceError).


from cython.parallel cimport prange
from libc.float cimport DBL_MAX
from libc.stdlib cimport free, malloc

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int gd_max_threads(void) { return omp_get_max_threads(); }
    static const int gd_have_openmp = 1;
    #else
    static int gd_max_threads(void) { return 1; }
    static const int gd_have_openmp = 0;
    #endif
    #if defined(__GNUC__) || defined(__clang__)
    #define GD_PREFETCH(p) __builtin_prefetch((const void *)(p), 0, 3)
    #else
    #define GD_PREFETCH(p) ((void)(p))
    #endif
    /* Which instruction sets the running CPU (and OS) supports: 0 baseline,
       1 x86-64-v3 (AVX2, FMA), 2 x86-64-v4 (AVX-512 F/VL/BW/DQ/CD). */
    static int gd_cpu_level(void) {
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
        __builtin_cpu_init();
        if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
            return 0;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
                && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
                && __builtin_cpu_supports("avx512cd"))
            return 2;
        return 1;
    #else
        return 0;
    #endif
    }
    """
    int gd_max_threads() noexcept nogil
    const int gd_have_openmp
    void GD_PREFETCH(const void *p) noexcept nogil
    int gd_cpu_level() noexcept nogil

cdef enum:
    # Fixed row blocking of the full-data pass: at most MAX_BLOCKS partial
    # sums, each over at least MIN_BLOCK_ROWS rows. Depends on n only, never on
    # the number of threads.
    MAX_BLOCKS = 64
    MIN_BLOCK_ROWS = 1024
    # Doubles in a 64-byte cache line: partial-sum rows are padded to whole
    # lines plus one line of gap, so two threads never write to the same line.
    LINE_DOUBLES = 8
    # A shuffled loop prefetches the row this many bytes of X ahead in the
    # visiting order (at least one row): short rows need more rows in flight.
    PREFETCH_BYTES = 4096

OPENMP = bool(gd_have_openmp)


def cpu_level():
    """Best instruction-set level of the running CPU: 0 baseline, 1 AVX2+FMA, 2 AVX-512."""
    return gd_cpu_level()


def max_threads():
    """Number of threads the parallel full-data pass uses by default."""
    return gd_max_threads()


cdef struct EpochOutcome:
    Py_ssize_t steps      # updates applied
    double loss_sum       # sum over applied steps of sum(r**2)/m (times a later)
    bint nonfinite        # a batch loss was not finite; that batch was not applied


# ---------------------------------------------------------------------------
# Per-row helpers
# ---------------------------------------------------------------------------

cdef inline double _dot(const double *x, const double *w, Py_ssize_t d) noexcept nogil:
    # Eight independent partial sums let the compiler keep several additions in
    # flight (and vectorise them) without -ffast-math, which would break NaN
    # detection; the sum order is fixed, so results are reproducible.
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    cdef double s4 = 0.0, s5 = 0.0, s6 = 0.0, s7 = 0.0
    cdef Py_ssize_t j = 0
    cdef Py_ssize_t d8 = d - d % 8
    while j < d8:
        s0 += x[j] * w[j]
        s1 += x[j + 1] * w[j + 1]
        s2 += x[j + 2] * w[j + 2]
        s3 += x[j + 3] * w[j + 3]
        s4 += x[j + 4] * w[j + 4]
        s5 += x[j + 5] * w[j + 5]
        s6 += x[j + 6] * w[j + 6]
        s7 += x[j + 7] * w[j + 7]
        j += 8
    while j < d:
        s0 += x[j] * w[j]
        j += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


cdef inline void _axpy(double alpha, const double *x, double *out,
                       Py_ssize_t d) noexcept nogil:
    # out += alpha * x
    cdef Py_ssize_t j
    for j in range(d):
        out[j] += alpha * x[j]


cdef inline void _descend(double lr, double scale, const double *sums, double *w,
                          Py_ssize_t d) noexcept nogil:
    # w -= lr * (scale * sums): the gradient first, then the step, as the
    # reference path does, so a huge lr cannot turn a zero gradient into NaN.
    cdef Py_ssize_t j
    for j in range(d):
        w[j] -= lr * (scale * sums[j])


cdef inline void _prefetch_row(const double *row, Py_ssize_t d) noexcept nogil:
    # A row need not start on a cache line: walk its lines, then its last one.
    cdef Py_ssize_t j = 0
    while j < d:
        GD_PREFETCH(row + j)
        j += LINE_DOUBLES
    GD_PREFETCH(row + d - 1)


cdef inline Py_ssize_t _prefetch_distance(Py_ssize_t d) noexcept nogil:
    cdef Py_ssize_t rows = PREFETCH_BYTES // (d * <Py_ssize_t> sizeof(double))
    return rows if rows > 0 else 1


cdef inline Py_ssize_t _row(const Py_ssize_t *order, Py_ssize_t k) noexcept nogil:
    return order[k] if order != NULL else k


# ---------------------------------------------------------------------------
# Full-data sums (parallel over fixed row blocks)
# ---------------------------------------------------------------------------

cdef void _block_sums(const double *X, const double *y, const double *w, double b,
                      Py_ssize_t start, Py_ssize_t stop, Py_ssize_t d,
                      double *out) noexcept nogil:
    # OUT: out[0] = sum r**2, out[1] = sum r, out[2:2+d] = sum r * x over rows
    # start..stop-1.
    cdef Py_ssize_t i, j
    cdef double r, sum_sq = 0.0, sum_r = 0.0
    cdef const double *x
    cdef double *g = out + 2
    for j in range(d):
        g[j] = 0.0
    for i in range(start, stop):
        x = X + i * d
        r = _dot(x, w, d) + b - y[i]
        sum_sq += r * r
        sum_r += r
        _axpy(r, x, g, d)
    out[0] = sum_sq
    out[1] = sum_r


cdef inline Py_ssize_t _n_blocks(Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t blocks = (n + MIN_BLOCK_ROWS - 1) // MIN_BLOCK_ROWS
    if blocks > MAX_BLOCKS:
        blocks = MAX_BLOCKS
    return blocks if blocks > 0 else 1


cdef inline Py_ssize_t _block_stride(Py_ssize_t d) noexcept nogil:
    return ((d + 2 + LINE_DOUBLES - 1) // LINE_DOUBLES + 1) * LINE_DOUBLES


cdef inline Py_ssize_t _block_start(Py_ssize_t c, Py_ssize_t rows,
                                    Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t start = c * rows
    return start if start < n else n


cdef void _full_sums(const double *X, const double *y, const double *w, double b,
                     Py_ssize_t n, Py_ssize_t d, double *partials,
                     int n_threads, double *out) noexcept nogil:
    # IN:  partials, scratch of _n_blocks(n) * _block_stride(d) doubles
    # OUT: out[0] = sum r**2, out[1] = sum r, out[2:2+d] = X.T @ r
    cdef Py_ssize_t blocks = _n_blocks(n)
    cdef Py_ssize_t stride = _block_stride(d)
    cdef Py_ssize_t rows = (n + blocks - 1) // blocks
    cdef Py_ssize_t c, k
    if n_threads > blocks:
        n_threads = <int> blocks
    if n_threads <= 1:
        # no thread team to start for one block (small n) or one thread
        for c in range(blocks):
            _block_sums(X, y, w, b, _block_start(c, rows, n), _block_start(c + 1, rows, n),
                        d, partials + c * stride)
    else:
        for c in prange(blocks, schedule="static", num_threads=n_threads):
            _block_sums(X, y, w, b, _block_start(c, rows, n), _block_start(c + 1, rows, n),
                        d, partials + c * stride)
    for k in range(d + 2):
        out[k] = 0.0
    for c in range(blocks):
        for k in range(d + 2):
            out[k] += partials[c * stride + k]


cdef double *_alloc(Py_ssize_t count) except NULL:
    cdef double *buf = <double *> malloc(count * sizeof(double))
    if buf == NULL:
        raise MemoryError()
    return buf


def value_and_grad(const double[:, ::1] X,   # IN (n, d)
                   const double[::1] y,      # IN (n,)
                   const double[::1] w,      # IN (d,)
                   double b,
                   double loss_factor,       # 1.0 for mse, 0.5 for half_mse
                   double[::1] grad_w,       # OUT (d,), overwritten
                   int n_threads):
    """Loss and gradient over all rows in one pass; returns ``(loss, grad_b)``."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], j
    cdef double *partials = _alloc(_n_blocks(n) * _block_stride(d))
    cdef double *sums = NULL
    cdef double scale = 2.0 * loss_factor / n
    try:
        sums = _alloc(d + 2)
        with nogil:
            _full_sums(&X[0, 0], &y[0], &w[0], b, n, d, partials, n_threads, sums)
            for j in range(d):
                grad_w[j] = scale * sums[2 + j]
        return loss_factor * sums[0] / n, scale * sums[1]
    finally:
        free(partials)
        free(sums)


# ---------------------------------------------------------------------------
# Epoch loops
# ---------------------------------------------------------------------------

cdef EpochOutcome _full_batch_epoch(
        const double *X, const double *y, Py_ssize_t n, Py_ssize_t d,
        double *w, double *b, double lr, double two_a, bint fit_intercept,
        Py_ssize_t max_steps, double *partials, double *sums,
        int n_threads) noexcept nogil:
    # One gradient step on all rows. IN/OUT: w[0:d], b[0].
    cdef EpochOutcome out
    cdef double c
    out.steps = 0
    out.loss_sum = 0.0
    out.nonfinite = False
    if max_steps < 1:
        return out
    _full_sums(X, y, w, b[0], n, d, partials, n_threads, sums)
    if not (sums[0] <= DBL_MAX):
        out.nonfinite = True
        return out
    c = two_a / n
    _descend(lr, c, sums + 2, w, d)
    if fit_intercept:
        b[0] -= lr * (c * sums[1])
    out.steps = 1
    out.loss_sum = sums[0] / n
    return out


cdef EpochOutcome _sgd_epoch(
        const double *X, const double *y, const Py_ssize_t *order,
        Py_ssize_t n, Py_ssize_t d, double *w, double *b, double lr,
        double two_a, bint fit_intercept, Py_ssize_t max_steps) noexcept nogil:
    # One update per row, rows in `order` (or 0..n-1). IN/OUT: w[0:d], b[0].
    cdef EpochOutcome out
    cdef Py_ssize_t k, i, steps = n if max_steps > n else max_steps
    cdef Py_ssize_t ahead = _prefetch_distance(d)
    cdef double r, sq, g, total = 0.0, bias = b[0]
    cdef const double *x
    out.nonfinite = False
    for k in range(steps):
        i = _row(order, k)
        if order != NULL and k + ahead < n:
            _prefetch_row(X + order[k + ahead] * d, d)
        x = X + i * d
        r = _dot(x, w, d) + bias - y[i]
        sq = r * r
        if not (sq <= DBL_MAX):
            out.nonfinite = True
            steps = k
            break
        total += sq
        g = two_a * r           # dL/db of this sample; dL/dw = g * x
        _descend(lr, g, x, w, d)
        if fit_intercept:
            bias -= lr * g
    b[0] = bias
    out.steps = steps
    out.loss_sum = total
    return out


cdef EpochOutcome _minibatch_epoch(
        const double *X, const double *y, const Py_ssize_t *order,
        Py_ssize_t n, Py_ssize_t d, Py_ssize_t batch_size, double *w,
        double *b, double lr, double two_a, bint fit_intercept, Py_ssize_t max_steps,
        double *g) noexcept nogil:
    # One update per batch of `batch_size` rows (the last one may be smaller).
    # IN/OUT: w[0:d], b[0]. Scratch: g[0:d].
    cdef EpochOutcome out
    cdef Py_ssize_t t, k, j, i, start, stop, m
    cdef Py_ssize_t n_batches = (n + batch_size - 1) // batch_size
    cdef Py_ssize_t steps = n_batches if max_steps > n_batches else max_steps
    cdef Py_ssize_t ahead = _prefetch_distance(d)
    cdef double r, c, sum_sq, sum_r, total = 0.0, bias = b[0]
    cdef const double *x
    out.nonfinite = False
    for t in range(steps):
        start = t * batch_size
        stop = start + batch_size
        if stop > n:
            stop = n
        m = stop - start
        for j in range(d):
            g[j] = 0.0
        sum_sq = 0.0
        sum_r = 0.0
        for k in range(start, stop):
            i = _row(order, k)
            if order != NULL and k + ahead < n:
                _prefetch_row(X + order[k + ahead] * d, d)
            x = X + i * d
            r = _dot(x, w, d) + bias - y[i]
            sum_sq += r * r
            sum_r += r
            _axpy(r, x, g, d)
        if not (sum_sq <= DBL_MAX):
            out.nonfinite = True
            steps = t
            break
        total += sum_sq / m
        c = two_a / m
        _descend(lr, c, g, w, d)
        if fit_intercept:
            bias -= lr * (c * sum_r)
    b[0] = bias
    out.steps = steps
    out.loss_sum = total
    return out


def run_epoch(const double[:, ::1] X,        # IN (n, d)
              const double[::1] y,           # IN (n,)
              const Py_ssize_t[::1] order,   # IN (n,) row order, or None for 0..n-1
              double[::1] w,                 # OUT (d,), updated in place
              double b,
              Py_ssize_t batch_size,         # >= 1; 1 is SGD, >= n is full batch
              double lr,
              double loss_factor,            # 1.0 for mse, 0.5 for half_mse
              bint fit_intercept,
              Py_ssize_t max_steps,          # stop after this many updates
              int n_threads):
    """Run (up to ``max_steps`` updates of) one epoch, updating ``w`` in place.

    Returns ``(b, steps, loss_sum, nonfinite)``: the new intercept, the number
    of updates applied, the sum over those steps of each batch's loss (taken
    before its update), and whether the loop stopped at a non-finite batch
    loss (that batch's update is then not applied).
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
    cdef const Py_ssize_t *order_ptr = NULL
    cdef double *scratch = NULL
    cdef double *sums = NULL
    cdef double bias = b
    cdef double two_a = 2.0 * loss_factor
    cdef EpochOutcome out
    if order is not None:
        order_ptr = &order[0]
    try:
        if batch_size >= n:
            scratch = _alloc(_n_blocks(n) * _block_stride(d))
            sums = _alloc(d + 2)
            with nogil:
                out = _full_batch_epoch(&X[0, 0], &y[0], n, d, &w[0], &bias, lr, two_a,
                                        fit_intercept, max_steps, scratch, sums,
                                        n_threads)
        elif batch_size == 1:
            with nogil:
                out = _sgd_epoch(&X[0, 0], &y[0], order_ptr, n, d, &w[0], &bias,
                                 lr, two_a, fit_intercept, max_steps)
        else:
            scratch = _alloc(d)
            with nogil:
                out = _minibatch_epoch(&X[0, 0], &y[0], order_ptr, n, d, batch_size,
                                       &w[0], &bias, lr, two_a, fit_intercept, max_steps,
                                       scratch)
    finally:
        free(scratch)
        free(sums)
    return bias, out.steps, loss_factor * out.loss_sum, bool(out.nonfinite)
