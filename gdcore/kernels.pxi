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
# * ``B == 1``  per-sample SGD (also when n == 1): ``w -= lr * ((2a * r) * x)``
#   after every row.
# * ``B >= n``  full batch: one step per epoch. The gradient over all rows is
#   split into a fixed number of row blocks that depends on ``n`` only; the
#   blocks are summed in parallel (OpenMP, when built with it; handed out
#   dynamically, so a thread the OS preempts does not hold the others up) and
#   reduced in block order, so the result is bit-for-bit the same for any
#   thread count.
# * otherwise  mini-batches of ``B`` rows; the last one may be smaller and uses
#   its own size ``m`` in the average.
#
# A whole epoch runs inside one ``nogil`` block. Rows are visited in the order
# given by an index array (``order``, possibly a subset of the rows when some
# are held out), or 0..n-1 when it is None, so shuffling never copies ``X``;
# the row 4 KiB ahead in the visiting order is prefetched (16 KiB, into L2,
# when shuffled).
#
# Every step ends in one update rule (_rule_steps) shared by the three loops:
# penalty (L2, L1), the epoch's gradient sum, PyTorch-style momentum or
# Nesterov, the step, and the running average of the iterates. Each
# combination of options is one branch-free loop, so it vectorises, and
# options that are off cost nothing; the per-sample loop, whose time is the
# chain from one row's update to the next row's residual, is compiled once
# per combination (_sgd_rows). Sample weights scale each row's residual; a
# per-step inverse-scaling rate is computed from the global step number.
#
# Multi-output targets (Y of shape (n, k)) have their own three loops at the
# end of this file: k dot products per row (one per output, x still in L1)
# and the same update rule, on the parameters laid out output by output.
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
from libc.math cimport pow, sqrt
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
    #define GD_PREFETCH_L2(p) __builtin_prefetch((const void *)(p), 0, 2)
    #else
    #define GD_PREFETCH(p) ((void)(p))
    #define GD_PREFETCH_L2(p) ((void)(p))
    #endif
    /* Prefetch the cache lines of a row of d doubles (it need not start on a
       line: its lines, then its last one), into L1 or, with to_l2, into L2
       only. A macro, not a function: GCC takes a function that only
       prefetches for one without effects and drops calls to it unless it
       happened to inline it first. */
    #define GD_PREFETCH_ROW(row, d, to_l2) do {                               \
        const double *gd_row_ = (row);                                         \
        Py_ssize_t gd_d_ = (d), gd_j_;                                         \
        if (to_l2) {                                                           \
            for (gd_j_ = 0; gd_j_ < gd_d_; gd_j_ += 8)  /* 8 doubles a line */ \
                GD_PREFETCH_L2(gd_row_ + gd_j_);                               \
            GD_PREFETCH_L2(gd_row_ + gd_d_ - 1);                               \
        } else {                                                               \
            for (gd_j_ = 0; gd_j_ < gd_d_; gd_j_ += 8)  /* 8 doubles a line */ \
                GD_PREFETCH(gd_row_ + gd_j_);                                  \
            GD_PREFETCH(gd_row_ + gd_d_ - 1);                                  \
        }                                                                      \
    } while (0)
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
    void GD_PREFETCH_ROW(const double *row, Py_ssize_t d, bint to_l2) noexcept nogil
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
    # The row loops prefetch the row this many bytes of X ahead in the
    # visiting order (at least one row): short rows need more rows in flight.
    # In order, into L1: the hardware prefetcher alone left the per-sample
    # epoch at d = 100 1.6 x slower (measured; 2 KiB and 16 KiB were slower
    # too). Shuffled, further ahead and into L2 only: rows from random places
    # take longer to arrive, and L1 has few slots for lines in flight
    # (measured at d = 100: 10 % faster than 4 KiB into L1).
    PREFETCH_BYTES = 4096
    SHUFFLED_PREFETCH_BYTES = 16384

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
    Py_ssize_t d, k, average_from   # k: number of outputs
    # State arrays, laid out like params: (d * k) weights W[j, c] at j * k + c,
    # then k intercepts. Single output: k = 1, so w[0:d] then b.
    double *velocity      # ((d+1)*k,) momentum buffer, or NULL
    double *average       # ((d+1)*k,) running mean of the iterates, or NULL
    double *grad_sum      # ((d+1)*k,) IN/OUT: sum of the steps' gradients (penalty incl.)
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


cdef inline Py_ssize_t _prefetch_distance(Py_ssize_t d, const Py_ssize_t *order) noexcept nogil:
    # rows ahead to prefetch: see PREFETCH_BYTES
    cdef Py_ssize_t ahead = PREFETCH_BYTES if order == NULL else SHUFFLED_PREFETCH_BYTES
    ahead = ahead // (d * <Py_ssize_t> sizeof(double))
    return ahead if ahead > 0 else 1


cdef inline Py_ssize_t _row(const Py_ssize_t *order, Py_ssize_t k) noexcept nogil:
    return order[k] if order != NULL else k


cdef inline double _sign(double v) noexcept nogil:
    return (v > 0.0) - (v < 0.0)


cdef inline double _rate(double lr, double power, Py_ssize_t t) noexcept nogil:
    # learning rate of global step t: lr / (t + 1)**power. pow() costs as much
    # as a short row, so the common powers take correctly rounded shortcuts.
    cdef double steps = <double> (t + 1)
    if power == 0.0:
        return lr
    if power == 0.5:
        return lr / sqrt(steps)
    if power == 0.25:
        return lr / sqrt(sqrt(steps))
    if power == 1.0:
        return lr / steps
    return lr / pow(steps, power)


cdef inline double _step_lr(const Step *s, Py_ssize_t t) noexcept nogil:
    return _rate(s.lr, s.power, t)


# ---------------------------------------------------------------------------
# The update rule: one step on params = (w[0:d], b = params[d])
# ---------------------------------------------------------------------------
# Every combination of options is one branch-free loop over the parameters:
# _rule_steps is called with literal `rule` and `penalty` arguments, so once
# inlined only the lines of that combination remain, the loop vectorises and
# options that are off cost nothing. All callers share these lines, so every
# path computes the same bits.
#
# Momentum (PyTorch's convention): the buffer is v = g at global step 0, then
# v = momentum * v + (1 - dampening) * g, and the step is lr * v, or with
# Nesterov lr * (g + momentum * v). Written with the old buffer, both are
#     p  <-  (p - a * v_old) - b * g
# with two numbers per step (see _momentum_step). That is the same step as the
# textbook order (the reference backend's) up to rounding, but the chain from
# g to the new p, which the next sample waits for, is as short as plain SGD's.

cdef enum:
    # How a step moves the parameters
    PLAIN_RULE = 0        # p -= lr * g
    MOMENTUM_RULE = 1     # v = cv * v + g;       p = (p - a * v_old) - b * g
    DAMPENED_RULE = 2     # v = cv * v + cg * g;  p = (p - a * v_old) - b * g

    # What the penalty adds to a parameter's gradient: nothing, l2 * p, or
    # l2 * p + l1 * sign(p).
    NO_PENALTY = 0
    L2_PENALTY = 1
    ELASTIC_PENALTY = 2


cdef struct MomentumStep:
    # The numbers of one momentum step (see the rule kinds)
    double cv, cg, a, b


cdef inline MomentumStep _momentum_step(double lr, double momentum, double dampening,
                                        bint nesterov, Py_ssize_t t) noexcept nogil:
    # v_new = cv * v_old + cg * g; the step is lr * v_new, or with Nesterov
    # lr * (g + momentum * v_new) = lr * momentum * cv * v_old
    #                               + lr * (1 + momentum * cg) * g.
    cdef MomentumStep m
    m.cv = 0.0 if t == 0 else momentum
    m.cg = 1.0 if t == 0 else 1.0 - dampening
    if nesterov:
        m.a = lr * momentum * m.cv
        m.b = lr * (1.0 + momentum * m.cg)
    else:
        m.a = lr * m.cv
        m.b = lr * m.cg
    return m


cdef inline int _rule_kind(double momentum, double dampening) noexcept nogil:
    if momentum == 0.0:
        return PLAIN_RULE
    return DAMPENED_RULE if dampening != 0.0 else MOMENTUM_RULE


cdef inline int _penalty_kind(double l2, double l1) noexcept nogil:
    if l1 != 0.0:
        return ELASTIC_PENALTY
    return L2_PENALTY if l2 != 0.0 else NO_PENALTY


cdef inline double _gradient(double scale, double src, double p, double l2, double l1,
                             int penalty) noexcept nogil:
    if penalty == NO_PENALTY:
        return scale * src
    if penalty == L2_PENALTY:
        return scale * src + l2 * p
    return scale * src + l2 * p + l1 * _sign(p)


cdef inline void _rule_steps(double *p, double scale, const double *src, Py_ssize_t count,
                             double lr, double l2, double l1, double *grad_sum, double *v,
                             MomentumStep m, int rule, int penalty) noexcept nogil:
    # IN/OUT p[0:count], grad_sum[0:count], v[0:count] (not touched by
    # PLAIN_RULE). The loss gradient is scale * src[j]. MOMENTUM_RULE skips
    # the multiplication by m.cg = 1 (the same bits).
    cdef Py_ssize_t j
    cdef double gj, vj
    for j in range(count):
        gj = _gradient(scale, src[j], p[j], l2, l1, penalty)
        grad_sum[j] += gj
        if rule == PLAIN_RULE:
            p[j] -= lr * gj
        else:
            vj = v[j]
            if rule == DAMPENED_RULE:
                v[j] = m.cv * vj + m.cg * gj
            else:
                v[j] = m.cv * vj + gj
            p[j] = (p[j] - m.a * vj) - m.b * gj


cdef inline void _rule_update(double *p, double scale, const double *src, Py_ssize_t count,
                              double lr, double l2, double l1, double *grad_sum, double *v,
                              MomentumStep m, int rule) noexcept nogil:
    # _rule_steps with a literal penalty kind (`rule` is a literal already)
    cdef int penalty = _penalty_kind(l2, l1)
    if penalty == NO_PENALTY:
        _rule_steps(p, scale, src, count, lr, l2, l1, grad_sum, v, m, rule, NO_PENALTY)
    elif penalty == L2_PENALTY:
        _rule_steps(p, scale, src, count, lr, l2, l1, grad_sum, v, m, rule, L2_PENALTY)
    else:
        _rule_steps(p, scale, src, count, lr, l2, l1, grad_sum, v, m, rule, ELASTIC_PENALTY)


cdef inline void _update(const Step *s, double *p, double scale, const double *src,
                         Py_ssize_t count, bint penalize, double lr, Py_ssize_t t,
                         double *v, double *grad_sum) noexcept nogil:
    # One step at global step t on p[0:count] (IN/OUT, with v and grad_sum):
    # the rule of s, and its penalty if `penalize`. The loss gradient is
    # scale * src[j].
    cdef double l2 = s.l2 if penalize else 0.0
    cdef double l1 = s.l1 if penalize else 0.0
    cdef MomentumStep m = _momentum_step(lr, s.momentum, s.dampening, s.nesterov, t)
    cdef int rule = _rule_kind(s.momentum, s.dampening)
    if rule == PLAIN_RULE:
        _rule_update(p, scale, src, count, lr, l2, l1, grad_sum, v, m, PLAIN_RULE)
    elif rule == MOMENTUM_RULE:
        _rule_update(p, scale, src, count, lr, l2, l1, grad_sum, v, m, MOMENTUM_RULE)
    else:
        _rule_update(p, scale, src, count, lr, l2, l1, grad_sum, v, m, DAMPENED_RULE)


cdef inline double *_offset(double *array, Py_ssize_t j) noexcept nogil:
    return array + j if array != NULL else NULL


cdef inline void _update_bias(const Step *s, double *params, double scale,
                              const double *src, Py_ssize_t t, double lr) noexcept nogil:
    # The k intercepts (after the d * k weights) take a step with loss gradient
    # scale * src[0:k], only with fit_intercept, penalised only with decay_bias.
    cdef Py_ssize_t at = s.d * s.k
    if s.fit_intercept:
        _update(s, params + at, scale, src, s.k, s.decay_bias, lr, t,
                _offset(s.velocity, at), s.grad_sum + at)


cdef inline void _average_step(const Step *s, const double *params,
                               Py_ssize_t t) noexcept nogil:
    # From global step average_from on: average = running mean of the iterates.
    cdef Py_ssize_t j
    cdef Py_ssize_t n_params = (s.d + 1) * s.k if s.fit_intercept else s.d * s.k
    cdef double share
    if s.average_from >= 0 and t >= s.average_from:
        share = 1.0 / (t - s.average_from + 1)      # one division, not one per entry
        for j in range(n_params):
            s.average[j] += (params[j] - s.average[j]) * share


cdef inline void _apply_step(const Step *s, double *params, double scale,
                             const double *src, double bias_scale, const double *bias_src,
                             Py_ssize_t t, double lr) noexcept nogil:
    # One step at global step t with rate lr. IN/OUT params and the state
    # arrays of s. The loss gradient is scale * src[0:d*k] for the weights and
    # bias_scale * bias_src[0:k] for the intercepts.
    _update(s, params, scale, src, s.d * s.k, True, lr, t, s.velocity, s.grad_sum)
    _update_bias(s, params, bias_scale, bias_src, t, lr)
    _average_step(s, params, t)


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
    cdef Py_ssize_t ahead = _prefetch_distance(d, rows)
    cdef double r, sr, sum_sq = 0.0, sum_r = 0.0
    cdef const double *x
    cdef double *g = out + 2
    for j in range(d):
        g[j] = 0.0
    for k in range(start, stop):
        i = _row(rows, k)
        if k + ahead < stop:
            GD_PREFETCH_ROW(X + _row(rows, k + ahead) * d, d, rows != NULL)
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
        for c in prange(blocks, schedule="dynamic", num_threads=n_threads):
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
    _apply_step(s, params, c, sums + 2, c, sums + 1, t, _step_lr(s, t))
    out.steps = 1
    out.loss_sum = sums[0] / n
    return out


# Tags for compiling the per-sample loop once per update rule and penalty:
# _sgd_rows takes a (NULL) pointer to one tag of each fused type below, and
# Cython emits one copy of it per pair, each with literal rule and penalty
# kinds, so each copy holds only its own arithmetic. (A run-time switch would
# leave the choice to the C compiler's inlining, which does not always make it.)
cdef struct PlainTag:
    char unused
cdef struct MomentumTag:
    char unused
cdef struct DampenedTag:
    char unused
cdef struct NoPenaltyTag:
    char unused
cdef struct L2Tag:
    char unused
cdef struct ElasticTag:
    char unused

ctypedef fused RuleTag:
    PlainTag
    MomentumTag
    DampenedTag

ctypedef fused PenaltyTag:
    NoPenaltyTag
    L2Tag
    ElasticTag


cdef EpochOutcome _sgd_rows(
        const RuleTag *rule_tag, const PenaltyTag *penalty_tag,
        const Step *s, const double *X, const double *y, const Py_ssize_t *order,
        Py_ssize_t n, double *params, Py_ssize_t t, Py_ssize_t first_step,
        Py_ssize_t stop_step) noexcept nogil:
    # _sgd_epoch for one (rule, penalty) pair.
    #
    # Each row's residual needs the weights the previous row just wrote, so
    # for short rows the time per row is the length of that dependency chain:
    # b - y[i] is formed beside the dot product rather than after it.
    cdef EpochOutcome out
    cdef Py_ssize_t k, i, step, d = s.d
    cdef Py_ssize_t stop = n if stop_step > n else stop_step
    cdef Py_ssize_t ahead = _prefetch_distance(d, order)
    cdef double r, sq, g, lr, total = 0.0, one = 1.0
    cdef MomentumStep m
    cdef const double *x
    # Locals, not s's fields: the loop's stores to double arrays could alias
    # those (as far as the C compiler knows) and force a reload every row.
    cdef double *w = params
    cdef double *grad_sum = s.grad_sum
    cdef double *v = s.velocity
    cdef double *v_bias = _offset(s.velocity, d)
    cdef const double *weight = s.weight
    cdef double two_a = s.two_a, base_lr = s.lr, power = s.power
    cdef double l2 = s.l2, l1 = s.l1, momentum = s.momentum, dampening = s.dampening
    cdef bint nesterov = s.nesterov, fit_intercept = s.fit_intercept
    cdef bint decay_bias = s.decay_bias, averaging = s.average_from >= 0
    cdef int rule, penalty
    if RuleTag is PlainTag:
        rule = PLAIN_RULE
    elif RuleTag is MomentumTag:
        rule = MOMENTUM_RULE
    else:
        rule = DAMPENED_RULE
    if PenaltyTag is NoPenaltyTag:
        penalty = NO_PENALTY
    elif PenaltyTag is L2Tag:
        penalty = L2_PENALTY
    else:
        penalty = ELASTIC_PENALTY
    m = _momentum_step(base_lr, momentum, dampening, nesterov, t)   # (unused if plain)
    out.nonfinite = False
    out.steps = 0
    for k in range(first_step, stop):
        i = _row(order, k)
        if k + ahead < n:
            GD_PREFETCH_ROW(X + _row(order, k + ahead) * d, d, order != NULL)
        x = X + i * d
        r = _dot(x, w, d) + (w[d] - y[i])
        g = two_a * r                 # dL/db of this sample; dL/dw = g * x
        sq = r * r
        if weight != NULL:
            sq = weight[i] * sq
            g = g * weight[i]
        if not (sq <= DBL_MAX):
            out.nonfinite = True
            break
        total += sq
        step = t + k - first_step
        lr = _rate(base_lr, power, step)
        if rule != PLAIN_RULE:
            m = _momentum_step(lr, momentum, dampening, nesterov, step)
        _rule_steps(w, g, x, d, lr, l2, l1, grad_sum, v, m, rule, penalty)
        if fit_intercept:
            if decay_bias:
                _rule_steps(w + d, g, &one, 1, lr, l2, l1, grad_sum + d, v_bias, m, rule,
                            penalty)
            else:
                _rule_steps(w + d, g, &one, 1, lr, 0.0, 0.0, grad_sum + d, v_bias, m, rule,
                            NO_PENALTY)
        if averaging:
            _average_step(s, params, step)
        out.steps += 1
    out.loss_sum = total
    return out


cdef EpochOutcome _sgd_epoch_with(
        const RuleTag *rule_tag, const Step *s, const double *X, const double *y,
        const Py_ssize_t *order, Py_ssize_t n, double *params, Py_ssize_t t,
        Py_ssize_t first_step, Py_ssize_t stop_step) noexcept nogil:
    # _sgd_rows for the rule of rule_tag and the penalty of s
    cdef int penalty = _penalty_kind(s.l2, s.l1)
    if penalty == NO_PENALTY:
        return _sgd_rows(rule_tag, <NoPenaltyTag *> NULL, s, X, y, order, n, params, t,
                         first_step, stop_step)
    if penalty == L2_PENALTY:
        return _sgd_rows(rule_tag, <L2Tag *> NULL, s, X, y, order, n, params, t,
                         first_step, stop_step)
    return _sgd_rows(rule_tag, <ElasticTag *> NULL, s, X, y, order, n, params, t,
                     first_step, stop_step)


cdef EpochOutcome _sgd_epoch(
        const Step *s, const double *X, const double *y, const Py_ssize_t *order,
        Py_ssize_t n, double *params, Py_ssize_t t, Py_ssize_t first_step,
        Py_ssize_t stop_step) noexcept nogil:
    # One update per row, rows in `order` (or 0..n-1). IN/OUT params. The
    # loop is compiled once per update rule and penalty (see _sgd_rows).
    cdef int rule = _rule_kind(s.momentum, s.dampening)
    if rule == PLAIN_RULE:
        return _sgd_epoch_with(<PlainTag *> NULL, s, X, y, order, n, params, t, first_step,
                               stop_step)
    if rule == MOMENTUM_RULE:
        return _sgd_epoch_with(<MomentumTag *> NULL, s, X, y, order, n, params, t,
                               first_step, stop_step)
    return _sgd_epoch_with(<DampenedTag *> NULL, s, X, y, order, n, params, t, first_step,
                           stop_step)


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
    cdef Py_ssize_t ahead = _prefetch_distance(d, order)
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
            if k + ahead < n:
                GD_PREFETCH_ROW(X + _row(order, k + ahead) * d, d, order != NULL)
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
        _apply_step(s, params, c, g, c, &sum_r, t + u - first_step,
                    _step_lr(s, t + u - first_step))
        out.steps += 1
    out.loss_sum = total
    return out


cdef void _fill_step(Step *s, Rule rule, Py_ssize_t d, Py_ssize_t k, double[::1] velocity,
                     double[::1] average, double[::1] grad_sum,
                     const double[::1] weight):
    # OUT s: the C view of rule and of the state arrays (None -> NULL).
    s.d = d
    s.k = k
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
    _fill_step(&s, rule, d, 1, velocity, average, grad_sum, weight)
    try:
        # batch size 1 first: a single sample is always a per-sample step
        if batch_size == 1:
            with nogil:
                out = _sgd_epoch(&s, &X[0, 0], &y[0], order_ptr, n, &params[0],
                                 global_step, first_step, stop_step)
        elif batch_size >= n:
            scratch = _alloc(_n_blocks(n) * _block_stride(d))
            sums = _alloc(d + 2)
            with nogil:
                out = _full_batch_epoch(&s, &X[0, 0], &y[0], order_ptr, n, &params[0],
                                        global_step, first_step, stop_step, scratch,
                                        sums, n_threads)
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


# ---------------------------------------------------------------------------
# Multi-output targets: Y of shape (n, k), W of shape (d, k), b of shape (k,)
# ---------------------------------------------------------------------------
# The loss is the sum over outputs of each output's loss,
# a * sum_c mean_i r[i, c]**2, so k outputs train exactly as k single-output
# problems would, in one pass over X.
#
# The Python layer's flat layout is W row-major (W[j, c] at j * k + c), then
# b. Inside, the loops work "by output": W.T row-major (output c's weights
# contiguous at c * d), then b, so that each output's residual is one _dot
# and each output's gradient one _axpy or _update over d contiguous weights,
# exactly the single-output arithmetic (without sample weights an output
# learns the same bits as it would alone). The def functions convert at entry and exit (O(d k) per
# call, nothing per row); the update rule is elementwise, so it works on
# either layout, and the state arrays travel with the parameters.

cdef void _transpose(const double *src, double *dst, Py_ssize_t rows,
                     Py_ssize_t cols) noexcept nogil:
    # OUT dst (cols, rows) = src (rows, cols) transposed, both row-major
    cdef Py_ssize_t i, j
    for i in range(rows):
        for j in range(cols):
            dst[j * rows + i] = src[i * cols + j]


cdef void _to_outputs(const double *src, double *dst, Py_ssize_t d,
                      Py_ssize_t k) noexcept nogil:
    # OUT dst = src (W row-major, then b) in the by-output layout
    cdef Py_ssize_t c
    _transpose(src, dst, d, k)
    for c in range(k):
        dst[d * k + c] = src[d * k + c]


cdef void _from_outputs(const double *src, double *dst, Py_ssize_t d,
                        Py_ssize_t k) noexcept nogil:
    # OUT dst = src (by-output layout) with W row-major, then b
    cdef Py_ssize_t c
    _transpose(src, dst, k, d)
    for c in range(k):
        dst[d * k + c] = src[d * k + c]


cdef inline double _weigh_residuals(double *r, Py_ssize_t k, double weight) noexcept nogil:
    # r <- weight * r; returns weight * |r|^2 (of the r given)
    cdef Py_ssize_t c
    cdef double sq = 0.0, sr
    for c in range(k):
        sr = weight * r[c]
        sq += sr * r[c]
        r[c] = sr
    return sq


cdef inline Py_ssize_t _multi_stride(Py_ssize_t d, Py_ssize_t k) noexcept nogil:
    # a block's partial sums: [S, R(k), G(d*k)] plus k doubles of residual
    # scratch, padded to whole cache lines plus one line of gap
    return ((1 + k + d * k + k + LINE_DOUBLES - 1) // LINE_DOUBLES + 1) * LINE_DOUBLES


cdef void _block_sums_multi(const double *X, const double *Y, const double *weight,
                            const Py_ssize_t *rows, const double *params,
                            Py_ssize_t start, Py_ssize_t stop, Py_ssize_t d, Py_ssize_t k,
                            double *out) noexcept nogil:
    # OUT out[0] = sum s*|r|^2, out[1:1+k] = sum s*r, out[1+k:1+k+d*k] = sum
    # s * r[c] * x, output by output, over rows rows[start..stop-1] (rows
    # NULL: start..stop-1). params by output. Scratch: out[1+k+d*k : 1+2k+d*k].
    cdef Py_ssize_t i, c, kk
    cdef Py_ssize_t ahead = _prefetch_distance(d, rows)
    cdef double sum_sq = 0.0
    cdef double *R = out + 1
    cdef double *G = out + 1 + k
    cdef double *r = G + d * k
    cdef const double *x
    cdef const double *y_row
    for c in range(k + d * k):
        R[c] = 0.0
    for kk in range(start, stop):
        i = _row(rows, kk)
        if kk + ahead < stop:
            GD_PREFETCH_ROW(X + _row(rows, kk + ahead) * d, d, rows != NULL)
        x = X + i * d
        y_row = Y + i * k
        for c in range(k):
            r[c] = (_dot(x, params + c * d, d) + params[d * k + c]) - y_row[c]
        sum_sq += _weigh_residuals(r, k, weight[i] if weight != NULL else 1.0)
        for c in range(k):
            R[c] += r[c]
            _axpy(r[c], x, G + c * d, d)
    out[0] = sum_sq


cdef void _full_sums_multi(const double *X, const double *Y, const double *weight,
                           const Py_ssize_t *rows, const double *params, Py_ssize_t n,
                           Py_ssize_t d, Py_ssize_t k, double *partials, int n_threads,
                           double *out) noexcept nogil:
    # Sums of _block_sums_multi over n rows, fixed blocks reduced in order.
    # IN: partials, scratch of _n_blocks(n) * _multi_stride(d, k) doubles.
    # OUT: out[0:1+k+d*k] as _block_sums_multi's (by output).
    cdef Py_ssize_t blocks = _n_blocks(n)
    cdef Py_ssize_t stride = _multi_stride(d, k)
    cdef Py_ssize_t per_block = (n + blocks - 1) // blocks
    cdef Py_ssize_t c, q, size = 1 + k + d * k
    if n_threads > blocks:
        n_threads = <int> blocks
    if n_threads <= 1:
        for c in range(blocks):
            _block_sums_multi(X, Y, weight, rows, params, _block_start(c, per_block, n),
                              _block_start(c + 1, per_block, n), d, k,
                              partials + c * stride)
    else:
        for c in prange(blocks, schedule="dynamic", num_threads=n_threads):
            _block_sums_multi(X, Y, weight, rows, params, _block_start(c, per_block, n),
                              _block_start(c + 1, per_block, n), d, k,
                              partials + c * stride)
    for q in range(size):
        out[q] = 0.0
    for c in range(blocks):
        for q in range(size):
            out[q] += partials[c * stride + q]


def full_sums_multi(const double[:, ::1] X,      # IN (n, d)
                    const double[:, ::1] Y,      # IN (n, k)
                    const double[::1] params,    # IN ((d + 1) * k,): W, then b
                    double[::1] out,             # OUT (1 + k + d*k,): S, R, G
                    int n_threads):
    """Raw multi-output sums over all rows: ``sum |r|^2``, ``sum r`` (k,) and
    ``X.T @ r`` (d * k, row-major), ``r = X @ W + b - Y``."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], k = Y.shape[1], c
    cdef double *partials = _alloc(_n_blocks(n) * _multi_stride(d, k))
    cdef double *by_output = _alloc((d + 1) * k + 1 + k + d * k)
    cdef double *sums = by_output + (d + 1) * k     # S, R, G by output
    try:
        with nogil:
            _to_outputs(&params[0], by_output, d, k)
            _full_sums_multi(&X[0, 0], &Y[0, 0], NULL, NULL, by_output, n, d, k,
                             partials, n_threads, sums)
            for c in range(1 + k):
                out[c] = sums[c]
            _transpose(sums + 1 + k, &out[1 + k], k, d)
    finally:
        free(partials)
        free(by_output)


def subset_loss_multi(const double[:, ::1] X,       # IN (n, d)
                      const double[:, ::1] Y,       # IN (n, k)
                      const Py_ssize_t[::1] rows,   # IN (m,) row indices
                      const double[::1] params,     # IN ((d + 1) * k,): W, then b
                      double loss_factor):
    """Loss (summed over outputs) over the rows ``rows``."""
    cdef Py_ssize_t d = X.shape[1], k = Y.shape[1], m = rows.shape[0], q, i, c
    cdef double r, total = 0.0
    cdef double *by_output = _alloc((d + 1) * k)
    try:
        with nogil:
            _to_outputs(&params[0], by_output, d, k)
            for q in range(m):
                i = rows[q]
                for c in range(k):
                    r = _dot(&X[i, 0], by_output + c * d, d) + by_output[d * k + c] - Y[i, c]
                    total += r * r
    finally:
        free(by_output)
    return loss_factor * total / m


cdef EpochOutcome _full_batch_epoch_multi(
        const Step *s, const double *X, const double *Y, const Py_ssize_t *order,
        Py_ssize_t n, double *params, Py_ssize_t t, Py_ssize_t first_step,
        Py_ssize_t stop_step, double *partials, double *sums,
        int n_threads) noexcept nogil:
    # One gradient step on all rows. IN/OUT params (by output). Scratch:
    # partials, sums.
    cdef EpochOutcome out
    cdef double c
    out.steps = 0
    out.loss_sum = 0.0
    out.nonfinite = False
    if first_step > 0 or stop_step < 1:
        return out
    _full_sums_multi(X, Y, s.weight, order, params, n, s.d, s.k, partials, n_threads, sums)
    if not (sums[0] <= DBL_MAX):
        out.nonfinite = True
        return out
    c = s.two_a / n
    _apply_step(s, params, c, sums + 1 + s.k, c, sums + 1, t, _step_lr(s, t))
    out.steps = 1
    out.loss_sum = sums[0] / n
    return out


cdef EpochOutcome _sgd_epoch_multi(
        const Step *s, const double *X, const double *Y, const Py_ssize_t *order,
        Py_ssize_t n, double *params, Py_ssize_t t, Py_ssize_t first_step,
        Py_ssize_t stop_step, double *g) noexcept nogil:
    # One update per row. IN/OUT params (by output). Scratch: g (k,), the
    # row's dL/db; output c's weights then step like a single output's.
    cdef EpochOutcome out
    cdef Py_ssize_t q, i, c, u, d = s.d, k = s.k
    cdef Py_ssize_t stop = n if stop_step > n else stop_step
    cdef Py_ssize_t ahead = _prefetch_distance(d, order)
    cdef double sq, lr, total = 0.0
    cdef const double *x
    cdef const double *y_row
    out.nonfinite = False
    out.steps = 0
    for q in range(first_step, stop):
        i = _row(order, q)
        if q + ahead < n:
            GD_PREFETCH_ROW(X + _row(order, q + ahead) * d, d, order != NULL)
        x = X + i * d
        y_row = Y + i * k
        for c in range(k):
            g[c] = _dot(x, params + c * d, d) + (params[d * k + c] - y_row[c])
        sq = _weigh_residuals(g, k, s.weight[i] if s.weight != NULL else 1.0)
        if not (sq <= DBL_MAX):
            out.nonfinite = True
            break
        total += sq
        u = t + q - first_step
        lr = _step_lr(s, u)
        for c in range(k):
            g[c] = s.two_a * g[c]      # dL/db[c]; dL/dW[:, c] = g[c] * x
            _update(s, params + c * d, g[c], x, d, True, lr, u, _offset(s.velocity, c * d),
                    s.grad_sum + c * d)
        _update_bias(s, params, 1.0, g, u, lr)
        _average_step(s, params, u)
        out.steps += 1
    out.loss_sum = total
    return out


cdef EpochOutcome _minibatch_epoch_multi(
        const Step *s, const double *X, const double *Y, const Py_ssize_t *order,
        Py_ssize_t n, Py_ssize_t batch_size, double *params, Py_ssize_t t,
        Py_ssize_t first_step, Py_ssize_t stop_step, double *scratch) noexcept nogil:
    # One update per batch. IN/OUT params (by output). Scratch: [R(k), G(d*k)
    # by output, r(k)].
    cdef EpochOutcome out
    cdef Py_ssize_t v, q, c, i, start, stop, m, d = s.d, k = s.k
    cdef Py_ssize_t n_batches = (n + batch_size - 1) // batch_size
    cdef Py_ssize_t last = n_batches if stop_step > n_batches else stop_step
    cdef Py_ssize_t ahead = _prefetch_distance(d, order)
    cdef double sum_sq, step_scale, total = 0.0
    cdef double *R = scratch
    cdef double *G = scratch + k
    cdef double *r = G + d * k
    cdef const double *x
    cdef const double *y_row
    out.nonfinite = False
    out.steps = 0
    for v in range(first_step, last):
        start = v * batch_size
        stop = start + batch_size
        if stop > n:
            stop = n
        m = stop - start
        for c in range(k + d * k):
            R[c] = 0.0
        sum_sq = 0.0
        for q in range(start, stop):
            i = _row(order, q)
            if q + ahead < n:
                GD_PREFETCH_ROW(X + _row(order, q + ahead) * d, d, order != NULL)
            x = X + i * d
            y_row = Y + i * k
            for c in range(k):
                r[c] = _dot(x, params + c * d, d) + params[d * k + c] - y_row[c]
            sum_sq += _weigh_residuals(r, k, s.weight[i] if s.weight != NULL else 1.0)
            for c in range(k):
                R[c] += r[c]
                _axpy(r[c], x, G + c * d, d)
        if not (sum_sq <= DBL_MAX):
            out.nonfinite = True
            break
        total += sum_sq / m
        step_scale = s.two_a / m
        _apply_step(s, params, step_scale, G, step_scale, R, t + v - first_step,
                    _step_lr(s, t + v - first_step))
        out.steps += 1
    out.loss_sum = total
    return out


def run_epoch_multi(const double[:, ::1] X,         # IN (n, d)
                    const double[:, ::1] Y,         # IN (n, k)
                    const Py_ssize_t[::1] order,    # IN row order, or None for 0..n-1
                    const double[::1] weight,       # IN (n,) sample weights, or None
                    double[::1] params,             # IN/OUT ((d + 1) * k,): W, then b
                    double[::1] velocity,           # IN/OUT like params, or None
                    double[::1] average,            # IN/OUT like params, or None
                    double[::1] grad_sum,           # IN/OUT like params
                    Rule rule,
                    Py_ssize_t global_step,
                    Py_ssize_t first_step,
                    Py_ssize_t stop_step):
    """:func:`run_epoch` for k outputs at once; same arguments and result."""
    cdef Py_ssize_t n = order.shape[0] if order is not None else X.shape[0]
    cdef Py_ssize_t d = X.shape[1], k = Y.shape[1]
    cdef Py_ssize_t size = (d + 1) * k
    cdef Step s
    cdef double *scratch = NULL
    cdef double *sums = NULL
    cdef double *state = NULL
    cdef double *by_output
    cdef const Py_ssize_t *order_ptr = &order[0] if order is not None else NULL
    cdef Py_ssize_t batch_size = rule.batch_size
    cdef int n_threads = rule.n_threads
    cdef EpochOutcome out
    _fill_step(&s, rule, d, k, velocity, average, grad_sum, weight)
    try:
        # the by-output copies of params and of the state arrays
        state = _alloc(4 * size)
        by_output = state
        _to_outputs(&params[0], by_output, d, k)
        _to_outputs(&grad_sum[0], state + size, d, k)
        s.grad_sum = state + size
        if velocity is not None:
            _to_outputs(&velocity[0], state + 2 * size, d, k)
            s.velocity = state + 2 * size
        if average is not None:
            _to_outputs(&average[0], state + 3 * size, d, k)
            s.average = state + 3 * size
        if batch_size == 1:
            scratch = _alloc(k)
            with nogil:
                out = _sgd_epoch_multi(&s, &X[0, 0], &Y[0, 0], order_ptr, n, by_output,
                                       global_step, first_step, stop_step, scratch)
        elif batch_size >= n:
            scratch = _alloc(_n_blocks(n) * _multi_stride(d, k))
            sums = _alloc(1 + k + d * k)
            with nogil:
                out = _full_batch_epoch_multi(&s, &X[0, 0], &Y[0, 0], order_ptr, n,
                                              by_output, global_step, first_step,
                                              stop_step, scratch, sums, n_threads)
        else:
            scratch = _alloc(2 * k + d * k)
            with nogil:
                out = _minibatch_epoch_multi(&s, &X[0, 0], &Y[0, 0], order_ptr, n,
                                             batch_size, by_output, global_step,
                                             first_step, stop_step, scratch)
        _from_outputs(by_output, &params[0], d, k)
        _from_outputs(s.grad_sum, &grad_sum[0], d, k)
        if velocity is not None:
            _from_outputs(s.velocity, &velocity[0], d, k)
        if average is not None:
            _from_outputs(s.average, &average[0], d, k)
    finally:
        free(scratch)
        free(sums)
        free(state)
    return out.steps, rule.loss_factor * out.loss_sum, bool(out.nonfinite)
