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
from libc.math cimport pow
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


cdef class Rule:
    """Hyper-parameters of a run_epoch call, filled in by the Python layer.

    lr            learning rate of the epoch (epoch-level schedules applied)
    power         > 0: per-step decay ``lr_t = lr / (t + 1)**power``, t the
                  global 0-based step
    loss_factor   a in L = a * mean(r**2): 1.0 mse, 0.5 half_mse
    l2, l1        penalty ``l2/2 * |w|^2 + l1 * |w|_1`` (its gradient is added)
    decay_bias    apply the penalty to the intercept too
    momentum, dampening, nesterov
                  PyTorch's SGD momentum: the buffer starts as the first
                  gradient (global step 0), then v = momentum*v + (1-dampening)*g
    average_from  >= 0: keep the running mean of the iterates from that global
                  step on; -1: no averaging
    """
    cdef public double lr, power, loss_factor, l2, l1, momentum, dampening
    cdef public bint nesterov, decay_bias, fit_intercept
    cdef public Py_ssize_t batch_size, average_from
    cdef public int n_threads

    def __init__(self, *, double lr, Py_ssize_t batch_size, double loss_factor=1.0,
                 bint fit_intercept=True, double power=0.0, double l2=0.0, double l1=0.0,
                 bint decay_bias=False, double momentum=0.0, double dampening=0.0,
                 bint nesterov=False, Py_ssize_t average_from=-1, int n_threads=1):
        self.lr = lr
        self.batch_size = batch_size
        self.loss_factor = loss_factor
        self.fit_intercept = fit_intercept
        self.power = power
        self.l2 = l2
        self.l1 = l1
        self.decay_bias = decay_bias
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.average_from = average_from
        self.n_threads = n_threads


cdef struct Step:
    # The C view of a Rule plus the state arrays, read inside nogil blocks.
    double lr, power, two_a, l2, l1, momentum, dampening
    bint nesterov, decay_bias, fit_intercept
    Py_ssize_t d, average_from
    double *velocity      # (d+1,) momentum buffer, or NULL
    double *average       # (d+1,) running mean of the iterates, or NULL
    double *grad_sum      # (d+1,) IN/OUT: sum of the steps' gradients (penalty included)
    const double *weight  # (n,) sample weights (mean 1), or NULL


cdef struct EpochOutcome:
    Py_ssize_t steps      # updates applied
    double loss_sum       # sum over applied steps of the batch loss / a
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


cdef inline double _sign(double v) noexcept nogil:
    return (v > 0.0) - (v < 0.0)


cdef inline double _step_lr(const Step *s, Py_ssize_t t) noexcept nogil:
    # learning rate of global step t
    if s.power == 0.0:
        return s.lr
    return s.lr / pow(<double> (t + 1), s.power)


# ---------------------------------------------------------------------------
# The update rule: one step on params = (w[0:d], b = params[d])
# ---------------------------------------------------------------------------

cdef inline void _update(const Step *s, double *p, double scale, const double *src,
                         Py_ssize_t count, bint penalize, double lr, Py_ssize_t t,
                         double *v, double *grad_sum) noexcept nogil:
    # IN/OUT p[0:count] (parameters), v[0:count] (momentum buffer, if any),
    # grad_sum[0:count]. The loss gradient is scale * src[j]. Each variant is
    # one branch-free loop, so it vectorises; options that are off add
    # nothing (not even a zero), so plain SGD costs what it did before them.
    cdef Py_ssize_t j
    cdef double gj, vj, cv, cg, ng, nv
    cdef double l2 = s.l2 if penalize else 0.0
    cdef double l1 = s.l1 if penalize else 0.0
    cdef bint penalty = l2 != 0.0 or l1 != 0.0
    if s.momentum == 0.0:
        if penalty:
            for j in range(count):
                gj = scale * src[j] + l2 * p[j] + l1 * _sign(p[j])
                grad_sum[j] += gj
                p[j] -= lr * gj
        else:
            for j in range(count):
                gj = scale * src[j]
                grad_sum[j] += gj
                p[j] -= lr * gj
        return
    # PyTorch's momentum: v = g at the very first step, then
    # v = momentum * v + (1 - dampening) * g; direction v, or g + momentum * v
    # (Nesterov). Written as v = cv * v + cg * g, direction ng * g + nv * v.
    cv = 0.0 if t == 0 else s.momentum
    cg = 1.0 if t == 0 else 1.0 - s.dampening
    ng = 1.0 if s.nesterov else 0.0
    nv = s.momentum if s.nesterov else 1.0
    for j in range(count):
        gj = scale * src[j] + l2 * p[j] + l1 * _sign(p[j])
        grad_sum[j] += gj
        vj = cv * v[j] + cg * gj
        v[j] = vj
        p[j] -= lr * (ng * gj + nv * vj)


cdef void _apply_step(const Step *s, double *params, double scale, const double *src,
                      double bias_grad, Py_ssize_t t, double lr) noexcept nogil:
    # One step at global step t with rate lr. IN/OUT params (d+1,) and the
    # state arrays of s. The loss gradient is scale * src[0:d] for w and
    # bias_grad for b; the intercept moves only with fit_intercept, and is
    # penalised only with decay_bias. Then the running average is updated.
    cdef Py_ssize_t j, count, d = s.d
    cdef Py_ssize_t n_params = d + 1 if s.fit_intercept else d
    cdef double one = 1.0
    _update(s, params, scale, src, d, True, lr, t, s.velocity, s.grad_sum)
    if s.fit_intercept:
        _update(s, params + d, bias_grad, &one, 1, s.decay_bias, lr, t,
                s.velocity + d if s.velocity != NULL else NULL, s.grad_sum + d)
    if s.average_from >= 0 and t >= s.average_from:
        count = t - s.average_from + 1
        for j in range(n_params):
            s.average[j] += (params[j] - s.average[j]) / count


# ---------------------------------------------------------------------------
# Full-data sums (parallel over fixed row blocks)
# ---------------------------------------------------------------------------

cdef void _block_sums(const double *X, const double *y, const double *weight,
                      const Py_ssize_t *rows, const double *w, double b,
                      Py_ssize_t start, Py_ssize_t stop, Py_ssize_t d,
                      double *out) noexcept nogil:
    # OUT: out[0] = sum s*r**2, out[1] = sum s*r, out[2:2+d] = sum s*r*x over
    # rows rows[start..stop-1] (rows NULL: start..stop-1), with s the sample
    # weight (1 when weight is NULL) and r = x.w + b - y (y NULL: taken as 0).
    cdef Py_ssize_t i, j, k
    cdef double r, sr, sum_sq = 0.0, sum_r = 0.0
    cdef const double *x
    cdef double *g = out + 2
    for j in range(d):
        g[j] = 0.0
    for k in range(start, stop):
        i = _row(rows, k)
        x = X + i * d
        r = _dot(x, w, d) + b
        if y != NULL:
            r = r - y[i]
        sr = r * weight[i] if weight != NULL else r
        sum_sq += sr * r
        sum_r += sr
        _axpy(sr, x, g, d)
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


cdef void _full_sums(const double *X, const double *y, const double *weight,
                     const Py_ssize_t *rows, const double *w, double b, Py_ssize_t n,
                     Py_ssize_t d, double *partials, int n_threads,
                     double *out) noexcept nogil:
    # Sums of _block_sums over the n rows rows[0..n-1] (rows NULL: 0..n-1).
    # IN:  partials, scratch of _n_blocks(n) * _block_stride(d) doubles
    # OUT: out[0] = sum s*r**2, out[1] = sum s*r, out[2:2+d] = X.T @ (s*r)
    cdef Py_ssize_t blocks = _n_blocks(n)
    cdef Py_ssize_t stride = _block_stride(d)
    cdef Py_ssize_t per_block = (n + blocks - 1) // blocks
    cdef Py_ssize_t c, k
    if n_threads > blocks:
        n_threads = <int> blocks
    if n_threads <= 1:
        # no thread team to start for one block (small n) or one thread
        for c in range(blocks):
            _block_sums(X, y, weight, rows, w, b, _block_start(c, per_block, n),
                        _block_start(c + 1, per_block, n), d, partials + c * stride)
    else:
        for c in prange(blocks, schedule="static", num_threads=n_threads):
            _block_sums(X, y, weight, rows, w, b, _block_start(c, per_block, n),
                        _block_start(c + 1, per_block, n), d, partials + c * stride)
    for k in range(d + 2):
        out[k] = 0.0
    for c in range(blocks):
        for k in range(d + 2):
            out[k] += partials[c * stride + k]


cdef double *_alloc(Py_ssize_t count) except NULL:
    cdef double *buf = <double *> malloc((count if count > 0 else 1) * sizeof(double))
    if buf == NULL:
        raise MemoryError()
    return buf


def full_sums(const double[:, ::1] X,          # IN (n, d)
              const double[::1] y,             # IN (n,), or None: y = 0
              const double[::1] weight,        # IN (n,) sample weights, or None
              const double[::1] w,             # IN (d,)
              double b,
              double[::1] out,                 # OUT (d + 2,): sum s*r**2, sum s*r, X.T @ (s*r)
              int n_threads):
    """Raw sums over all rows in one pass (parallel, fixed block order).

    With ``y`` None this is ``A.T @ (A @ [w, b])`` for ``A = [X, 1]`` (power
    iteration); the raw sums of several chunks add up exactly in any fixed order.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
    cdef double *partials = _alloc(_n_blocks(n) * _block_stride(d))
    cdef const double *y_ptr = &y[0] if y is not None else NULL
    cdef const double *weight_ptr = &weight[0] if weight is not None else NULL
    try:
        with nogil:
            _full_sums(&X[0, 0], y_ptr, weight_ptr, NULL, &w[0], b, n, d, partials,
                       n_threads, &out[0])
    finally:
        free(partials)


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
            _full_sums(&X[0, 0], &y[0], NULL, NULL, &w[0], b, n, d, partials, n_threads,
                       sums)
            for j in range(d):
                grad_w[j] = scale * sums[2 + j]
        return loss_factor * sums[0] / n, scale * sums[1]
    finally:
        free(partials)
        free(sums)


def fill_range(Py_ssize_t[::1] out):   # OUT (n,): 0, 1, ..., n-1
    """Write 0..n-1 into ``out`` (a reusable index buffer; no temporary)."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(out.shape[0]):
            out[i] = i


def subset_loss(const double[:, ::1] X,          # IN (n, d)
                const double[::1] y,             # IN (n,)
                const Py_ssize_t[::1] rows,      # IN (m,) row indices
                const double[::1] params,        # IN (d + 1,): w, then b
                double loss_factor):
    """Mean loss over the rows ``rows`` (a held-out validation set)."""
    cdef Py_ssize_t d = X.shape[1], m = rows.shape[0], k, i
    cdef double r, total = 0.0
    with nogil:
        for k in range(m):
            i = rows[k]
            r = _dot(&X[i, 0], &params[0], d) + params[d] - y[i]
            total += r * r
    return loss_factor * total / m


# ---------------------------------------------------------------------------
# Epoch loops
# ---------------------------------------------------------------------------

cdef EpochOutcome _full_batch_epoch(
        const Step *s, const double *X, const double *y, const Py_ssize_t *order,
        Py_ssize_t n, double *params, Py_ssize_t t, Py_ssize_t first_step, Py_ssize_t stop_step,
        double *partials, double *sums, int n_threads) noexcept nogil:
    # One gradient step on all rows (the epoch's only step). IN/OUT params.
    # Scratch: partials, sums (d+2,).
    cdef EpochOutcome out
    cdef Py_ssize_t d = s.d
    cdef double c
    out.steps = 0
    out.loss_sum = 0.0
    out.nonfinite = False
    if first_step > 0 or stop_step < 1:
        return out
    _full_sums(X, y, s.weight, order, params, params[d], n, d, partials, n_threads, sums)
    if not (sums[0] <= DBL_MAX):
        out.nonfinite = True
        return out
    c = s.two_a / n
    _apply_step(s, params, c, sums + 2, c * sums[1], t, _step_lr(s, t))
    out.steps = 1
    out.loss_sum = sums[0] / n
    return out


cdef EpochOutcome _sgd_epoch(
        const Step *s, const double *X, const double *y, const Py_ssize_t *order,
        Py_ssize_t n, double *params, Py_ssize_t t, Py_ssize_t first_step,
        Py_ssize_t stop_step) noexcept nogil:
    # One update per row, rows in `order` (or 0..n-1). IN/OUT params.
    cdef EpochOutcome out
    cdef Py_ssize_t k, i, d = s.d
    cdef Py_ssize_t stop = n if stop_step > n else stop_step
    cdef Py_ssize_t ahead = _prefetch_distance(d)
    cdef double r, sq, g, total = 0.0
    cdef const double *x
    out.nonfinite = False
    out.steps = 0
    for k in range(first_step, stop):
        i = _row(order, k)
        if order != NULL and k + ahead < n:
            _prefetch_row(X + order[k + ahead] * d, d)
        x = X + i * d
        r = _dot(x, params, d) + params[d] - y[i]
        g = s.two_a * r               # dL/db of this sample; dL/dw = g * x
        sq = r * r
        if s.weight != NULL:
            sq = s.weight[i] * sq
            g = g * s.weight[i]
        if not (sq <= DBL_MAX):
            out.nonfinite = True
            break
        total += sq
        _apply_step(s, params, g, x, g, t + k - first_step, _step_lr(s, t + k - first_step))
        out.steps += 1
    out.loss_sum = total
    return out


cdef EpochOutcome _minibatch_epoch(
        const Step *s, const double *X, const double *y, const Py_ssize_t *order,
        Py_ssize_t n, Py_ssize_t batch_size, double *params, Py_ssize_t t,
        Py_ssize_t first_step, Py_ssize_t stop_step, double *g) noexcept nogil:
    # One update per batch of `batch_size` rows (the last one may be smaller).
    # IN/OUT params. Scratch: g (d,), the batch's sum of s * r * x.
    cdef EpochOutcome out
    cdef Py_ssize_t u, k, j, i, start, stop, m, d = s.d
    cdef Py_ssize_t n_batches = (n + batch_size - 1) // batch_size
    cdef Py_ssize_t last = n_batches if stop_step > n_batches else stop_step
    cdef Py_ssize_t ahead = _prefetch_distance(d)
    cdef double r, sr, c, sum_sq, sum_r, total = 0.0
    cdef double *w = params
    cdef const double *x
    out.nonfinite = False
    out.steps = 0
    for u in range(first_step, last):
        start = u * batch_size
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
            r = _dot(x, w, d) + w[d] - y[i]
            sr = r * s.weight[i] if s.weight != NULL else r
            sum_sq += sr * r
            sum_r += sr
            _axpy(sr, x, g, d)
        if not (sum_sq <= DBL_MAX):
            out.nonfinite = True
            break
        total += sum_sq / m
        c = s.two_a / m
        _apply_step(s, params, c, g, c * sum_r, t + u - first_step,
                    _step_lr(s, t + u - first_step))
        out.steps += 1
    out.loss_sum = total
    return out


def run_epoch(const double[:, ::1] X,         # IN (n, d)
              const double[::1] y,            # IN (n,)
              const Py_ssize_t[::1] order,    # IN (n,) row order, or None for 0..n-1
              const double[::1] weight,       # IN (n,) sample weights (mean 1), or None
              double[::1] params,             # IN/OUT (d + 1,): w, then b
              double[::1] velocity,           # IN/OUT (d + 1,) momentum buffer, or None
              double[::1] average,            # IN/OUT (d + 1,) mean of iterates, or None
              double[::1] grad_sum,           # IN/OUT (d + 1,) sum of step gradients
              Rule rule,
              Py_ssize_t global_step,         # global index t of step `first_step`
              Py_ssize_t first_step,          # run the epoch's steps first_step ..
              Py_ssize_t stop_step):          # .. stop_step - 1 (clipped to the epoch)
    """Run steps ``first_step .. stop_step - 1`` of one epoch, in place.

    A step is one row (``batch_size == 1``), one batch of ``batch_size``
    rows, or all rows (``batch_size >= n``). Returns ``(steps, loss_sum,
    nonfinite)``: the number of updates applied, the sum of their batch losses
    (each taken before its update), and whether the loop stopped at a batch
    whose loss was not finite (that update is then not applied).
    """
    # The epoch visits the rows in `order` (possibly a subset of X's rows, the
    # rest held out), or all rows of X in turn.
    cdef Py_ssize_t n = order.shape[0] if order is not None else X.shape[0]
    cdef Py_ssize_t d = X.shape[1]
    cdef Step s
    cdef double *scratch = NULL
    cdef double *sums = NULL
    cdef const Py_ssize_t *order_ptr = &order[0] if order is not None else NULL
    cdef Py_ssize_t batch_size = rule.batch_size
    cdef int n_threads = rule.n_threads
    cdef EpochOutcome out
    s.d = d
    s.lr = rule.lr
    s.power = rule.power
    s.two_a = 2.0 * rule.loss_factor
    s.l2 = rule.l2
    s.l1 = rule.l1
    s.momentum = rule.momentum
    s.dampening = rule.dampening
    s.nesterov = rule.nesterov
    s.decay_bias = rule.decay_bias
    s.fit_intercept = rule.fit_intercept
    s.average_from = rule.average_from
    s.velocity = &velocity[0] if velocity is not None else NULL
    s.average = &average[0] if average is not None else NULL
    s.grad_sum = &grad_sum[0]
    s.weight = &weight[0] if weight is not None else NULL
    try:
        if batch_size >= n:
            scratch = _alloc(_n_blocks(n) * _block_stride(d))
            sums = _alloc(d + 2)
            with nogil:
                out = _full_batch_epoch(&s, &X[0, 0], &y[0], order_ptr, n, &params[0],
                                        global_step, first_step, stop_step, scratch,
                                        sums, n_threads)
        elif batch_size == 1:
            with nogil:
                out = _sgd_epoch(&s, &X[0, 0], &y[0], order_ptr, n, &params[0],
                                 global_step, first_step, stop_step)
        else:
            scratch = _alloc(d)
            with nogil:
                out = _minibatch_epoch(&s, &X[0, 0], &y[0], order_ptr, n, batch_size,
                                       &params[0], global_step, first_step, stop_step,
                                       scratch)
    finally:
        free(scratch)
        free(sums)
    return out.steps, rule.loss_factor * out.loss_sum, bool(out.nonfinite)
